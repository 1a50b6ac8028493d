"""Settings of the transcripts `callvault serve` makes by itself, and the recording tags a room's policy
sets to ask for them (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

TRANSCRIBE_TAG = "transcribe"
"""A recording's tag (from its room's policy): 'on' or 'off'; absent: `transcripts.enabled` decides."""
REDACT_TAG = "redact"
"""A recording's tag (from its room's policy): 'on' or 'off'; absent: `transcripts.redact` decides."""


def on_off(value: bool) -> str:
    return "on" if value else "off"


class TranscriptSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=False,
        description="Transcribe recordings whose room's policy does not say (needs the transcribe extra).",
    )
    redact: bool = Field(
        default=False,
        description="After transcription, silence spoken card numbers (and expiry, security code) in a"
        " redacted copy of recordings whose room's policy does not say.",
    )
    keep_original: bool = Field(
        default=True,
        description="Keep the unredacted originals after a redaction; false deletes them (audio tracks and"
        " their segments, composites, earlier copies, a transcript stored unmasked) from the store and the"
        " local folder once the redacted copy is stored, in a manifest revision listing each and why.",
    )
    model: Path | None = Field(
        default=None, description="A local faster-whisper model folder; unset: the packaged Whisper tiny.en."
    )
    language: str | None = Field(
        default="en", pattern=r"^[a-z]{2,3}$", description="Spoken language; unset: detected per track."
    )
    threads: int = Field(default=2, ge=1, le=64, description="CPU threads the model uses per process.")
    processes: int = Field(default=1, ge=1, le=16, description="Recordings transcribed at once (processes).")
    timeout: float = Field(
        default=3600.0, gt=0, description="Seconds one job may take before its worker process is replaced."
    )
    retry_initial: float = Field(
        default=1.0,
        gt=0,
        le=3600,
        description="Seconds before a job interrupted by an error (the store unavailable) is tried again;"
        " doubled at each failure up to retry_max.",
    )
    retry_max: float = Field(
        default=60.0, gt=0, le=3600, description="Longest wait between two tries of an interrupted job."
    )

    def retry_delay(self, attempt: int) -> float:
        """Seconds before try `attempt + 1` (attempt counts the failed tries, from 1)."""
        return min(self.retry_max, self.retry_initial * 2.0 ** min(attempt - 1, 30))

    def wants_transcript(self, tags: Mapping[str, str]) -> bool:
        return _tag(tags, TRANSCRIBE_TAG, self.enabled)

    def wants_redaction(self, tags: Mapping[str, str]) -> bool:
        return _tag(tags, REDACT_TAG, self.redact)


def _tag(tags: Mapping[str, str], name: str, default: bool) -> bool:
    return {"on": True, "off": False}.get(tags.get(name, ""), default)
