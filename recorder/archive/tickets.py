"""Finish tickets: the durable promise to announce a recording once everything of it is stored.

When a recording finishes, the archive writes `<spool>/finishing/<recording id>.json` (fsynced, renamed
into place) *before* it queues the manifest upload. The ticket holds the signed manifest and what the
terminal webhook needs. It is removed only after the terminal event (recording.finished or
recording.failed) is in the webhook outbox, so a restart at any point finds either the ticket (and
completes it when the spool has uploaded everything) or the event in the outbox (and delivers it).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.manifest.model import Manifest

TICKETS_DIR = "finishing"


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(description="'mux', 'manifest', 'upload' ...")
    error: str


class FinishTicket(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    room_id: str | None = None
    call_id: str | None = None
    folder: Path = Field(description="The recording's local folder.")
    finished_at: datetime
    manifest: Manifest | None = Field(default=None, description="The signed manifest (None if it failed).")
    manifest_key: str
    signature_key: str
    failure: Failure | None = None


def ticket_path(folder: Path, recording_id: str) -> Path:
    return folder / f"{recording_id}.json"


def write_ticket(folder: Path, ticket: FinishTicket) -> Path:
    """Write the ticket durably (temporary file, fsync, rename, fsync of the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = ticket_path(folder, ticket.recording_id)
    tmp = folder / f".{ticket.recording_id}.json.tmp"
    with tmp.open("wb") as f:
        f.write(ticket.model_dump_json().encode())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_tickets(folder: Path) -> tuple[list[FinishTicket], list[tuple[Path, str]]]:
    """Every ticket in the folder, and (path, why) for files that are not readable tickets."""
    tickets, bad = [], []
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        try:
            tickets.append(FinishTicket.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            bad.append((path, str(exc).splitlines()[0]))
    return tickets, bad


def remove_ticket(folder: Path, recording_id: str) -> None:
    ticket_path(folder, recording_id).unlink(missing_ok=True)
