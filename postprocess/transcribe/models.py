"""What a transcript holds: typed models shared by transcription, redaction, search and the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

TRANSCRIPT_JSON = "transcript.json"
TRANSCRIPT_VTT = "transcript.vtt"
MASK = "[redacted]"


class TranscriptError(Exception):
    """A transcript cannot be made or read: the message says why, in one line."""


class Word(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The word as the model wrote it, with its punctuation.")
    start: float = Field(description="Seconds on the recording's timeline (from Transcript.origin).")
    end: float
    probability: float = Field(ge=0.0, le=1.0, description="The model's confidence in the word.")


class Segment(BaseModel):
    """One stretch of one participant's speech (about a sentence)."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(description="Participant id (the track's owner).")
    track: str = Field(description="The audio track it was heard on.")
    start: float = Field(description="Seconds on the recording's timeline.")
    end: float
    text: str
    confidence: float = Field(
        ge=0.0, le=1.0, description="Mean probability of its words (1.0 when it has none)."
    )
    words: list[Word] = Field(default_factory=list)


class TrackTranscript(BaseModel):
    """Where one audio track sits and what was heard on it."""

    model_config = ConfigDict(extra="forbid")

    track: str
    speaker: str
    offset: float = Field(description="Seconds from the recording's origin to the track's first sample.")
    duration: float = Field(ge=0.0, description="Seconds of audio decoded.")
    language: str
    processing_seconds: float = Field(ge=0.0, description="Wall-clock seconds the model took.")


class RedactionInterval(BaseModel):
    """An interval of the recording's timeline that was (or is to be) replaced by silence."""

    model_config = ConfigDict(extra="forbid")

    start: float = Field(ge=0.0, description="Seconds on the recording's timeline.")
    end: float = Field(ge=0.0)
    reason: str = Field(
        description="Why: 'card-number', 'card-expiry', 'card-security-code', or an admin's words."
    )
    rule: str = Field(description="'auto' (found in the transcript) or 'manual'.")


class Transcript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    recording: str = Field(description="The recording id (its folder's name).")
    origin: float | None = Field(
        default=None, description="Unix seconds of the timeline's zero: the earliest track's first frame."
    )
    model: str = Field(description="The model's folder name ('tiny.en' for the packaged one).")
    tracks: list[TrackTranscript] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list, description="All tracks' segments, by start.")
    redactions: list[RedactionInterval] = Field(
        default_factory=list, description="Intervals masked in this transcript (and silenced in the audio)."
    )

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments)
