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
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.manifest.model import Manifest, StoredObject
from recorder.recording import RecordingInfo

TICKETS_DIR = "finishing"
COMPOSITE_TICKETS_DIR = "compositing"


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


class CompositeTicket(BaseModel):
    """The durable promise to add a recording's composites to its manifest and announce them.

    Written when the composites are built (`<spool>/compositing/<recording id>.json`). Once the recording
    itself is announced, the archive adds `files` to a new manifest revision (`manifest` and `objects` are
    then set and the ticket rewritten), and when everything is stored it publishes composite.finished per
    object (composite.failed for `errors`) and removes the ticket."""

    model_config = ConfigDict(extra="forbid")

    info: RecordingInfo
    files: list[str] = Field(description="Composite files built, relative to the recording folder.")
    errors: list[str] = Field(default_factory=list, description="Composites that could not be built.")
    built_at: datetime
    manifest: Manifest | None = Field(default=None, description="The revision listing the composites.")
    objects: list[StoredObject] = Field(default_factory=list, description="The composites as stored.")
    failure: Failure | None = None

    @property
    def recording_id(self) -> str:
        return self.info.recording_id


Ticket = TypeVar("Ticket", FinishTicket, CompositeTicket)


def ticket_path(folder: Path, recording_id: str) -> Path:
    return folder / f"{recording_id}.json"


def write_ticket(folder: Path, ticket: FinishTicket | CompositeTicket) -> Path:
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


def read_tickets(folder: Path, model: type[Ticket]) -> tuple[list[Ticket], list[tuple[Path, str]]]:
    """Every ticket in the folder, and (path, why) for files that are not readable tickets."""
    tickets: list[Ticket] = []
    bad: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        try:
            tickets.append(model.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            bad.append((path, str(exc).splitlines()[0]))
    return tickets, bad


def remove_ticket(folder: Path, recording_id: str) -> None:
    ticket_path(folder, recording_id).unlink(missing_ok=True)
