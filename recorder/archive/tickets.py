"""Finish tickets: the durable promise to announce a recording once everything of it is stored.

When a recording finishes, the archive writes `<spool>/finishing/<recording id>.json` (fsynced, renamed
into place) *before* it queues the manifest upload. The ticket holds the signed manifest and what the
terminal webhook needs. It is removed only after the terminal event (recording.finished or
recording.failed) is in the webhook outbox, so a restart at any point finds either the ticket (and
completes it when the spool has uploaded everything) or the event in the outbox (and delivers it).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from recorder.durable_json import read_models, remove_model, write_model
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
    itself is announced, the archive adds `files` to a new manifest revision (`manifest` is then set and
    the ticket rewritten), and when everything is stored it publishes composite.finished per object
    (composite.failed for `errors`) and removes the ticket."""

    model_config = ConfigDict(extra="forbid")

    info: RecordingInfo
    files: list[str] = Field(description="Composite files built, relative to the recording folder.")
    errors: list[str] = Field(default_factory=list, description="Composites that could not be built.")
    built_at: datetime
    manifest: Manifest | None = Field(default=None, description="The revision listing the composites.")
    failure: Failure | None = None

    @property
    def recording_id(self) -> str:
        return self.info.recording_id

    @property
    def objects(self) -> list[StoredObject]:
        """The composites as the revision lists them (none before it exists)."""
        files = set(self.files)
        return [o for o in self.manifest.objects if o.name in files] if self.manifest is not None else []


Ticket = TypeVar("Ticket", FinishTicket, CompositeTicket)


def write_ticket(folder: Path, ticket: FinishTicket | CompositeTicket) -> Path:
    """Write the ticket durably (temporary file, fsync, rename, fsync of the folder)."""
    return write_model(folder, ticket.recording_id, ticket)


def read_tickets(folder: Path, model: type[Ticket]) -> tuple[list[Ticket], list[tuple[Path, str]]]:
    """Every ticket in the folder, and (path, why) for files that are not readable tickets."""
    return read_models(folder, model)


def remove_ticket(folder: Path, recording_id: str) -> None:
    remove_model(folder, recording_id)
