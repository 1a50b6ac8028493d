"""A recording as the service sees it: one call (room) with its participants, recorded into one folder,
and the sink interface through which it reaches storage, manifests and webhooks.

The service's RecordingManager creates a RecordingSession per recording and hands every RecordingSink
the recording's life: started, each closed segment, each finished track, finished. Sinks run on the
event loop and must only queue work; `recording_finished` may await the work it queued (uploads,
manifest, webhook), so the caller knows when the recording is available.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from recorder.models import PauseInterval, SegmentInfo, TrackSummary


class ParticipantInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The SFU's participant id (Janus publisher id), as a string.")
    display_name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    joined_at: float | None = Field(default=None, description="Unix time this participant's recording began.")
    left_at: float | None = None


class RecordingInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    folder: Path
    room_id: str | None = None
    call_id: str | None = None
    started_at: float
    finished_at: float | None = None
    participants: list[ParticipantInfo] = Field(default_factory=list)
    track_participants: dict[str, str] = Field(
        default_factory=dict, description="Track name -> participant id."
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    pauses: list[PauseInterval] = Field(
        default_factory=list, description="Pauses of the whole recording (participants' own are per track)."
    )
    encryption_recipients: list[str] | None = Field(
        default=None,
        description="age recipients its room's policy names (None: the service's archive.encryption).",
    )


class RecordingSink(Protocol):
    def recording_started(self, info: RecordingInfo) -> None: ...

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None: ...

    def track_finished(self, folder: Path, summary: TrackSummary) -> None: ...

    def recording_paused(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        """The whole recording (participant None) or one participant's tracks were paused."""
        ...

    def recording_resumed(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        """A pause ended (`pause.end_time` is set)."""
        ...

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None: ...


class FinishedRecordingSink:
    """A `RecordingSink` that acts only when a recording has finished (post-call work: composites,
    transcripts, queued jobs): every other notification is ignored. Subclasses define
    `recording_finished`."""

    def recording_started(self, info: RecordingInfo) -> None:
        pass

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        pass

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        pass

    def recording_paused(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        pass

    def recording_resumed(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        pass
