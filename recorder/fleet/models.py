"""The recorder fleet's typed rows: a recorder's registration, the fleet as the API lists it, and what a
recording's failure left when its recorder went silent (`recordings.failure`, as JSON)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from recorder.api.times import Timestamp


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str
    incarnation: str = Field(description="Random token of this run of the node.")
    sfu: str
    rtp_port_min: int
    rtp_port_max: int
    version: str


NodeState = Literal["alive", "stopped", "dead"]


class RecorderOut(BaseModel):
    """A recorder node of the fleet as the catalog knows it."""

    model_config = ConfigDict(extra="forbid")

    node: str
    sfu: str = Field(description="The SFU it follows (fleet.sfu).")
    rtp_port_min: int
    rtp_port_max: int
    version: str
    started_at: Timestamp
    heartbeat_at: Timestamp = Field(description="Its last heartbeat.")
    stopped_at: Timestamp | None = Field(default=None, description="When it stopped cleanly.")
    dead_at: Timestamp | None = Field(default=None, description="When a peer found it silent for too long.")
    state: NodeState = Field(
        description="alive: heartbeats within fleet.dead_after_seconds; stopped: it stopped cleanly;"
        " dead: silent for longer."
    )
    recordings_in_progress: int = Field(description="Its recordings still recording or paused.")


class RecorderList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recorders: list[RecorderOut]
    alive: int
    dead: int


class RecoveredSegment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track: str
    index: int
    path: str = Field(description="Path relative to the recording folder, on the recorder's disk.")
    size: int
    sha256: str


class RecordingFailure(BaseModel):
    """Why a recording failed when its recorder went silent, and what was recovered."""

    model_config = ConfigDict(extra="forbid")

    reason: str
    recorder: str
    last_heartbeat_at: Timestamp
    detected_by: str
    detected_at: Timestamp
    segments: list[RecoveredSegment] = Field(
        default_factory=list,
        description="Segments closed (hashed, written, queued for upload) before the recorder went silent.",
    )


class FailedRecording(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    room_id: str | None
    call_id: str | None
    failure: RecordingFailure


def failure_of(text: str | None) -> RecordingFailure | None:
    """The `recordings.failure` column's value, read back (None when unset or unreadable)."""
    if not text:
        return None
    try:
        return RecordingFailure.model_validate(json.loads(text))
    except ValueError:
        return None
