"""What a composite is asked for and what it produced (typed, picklable: they cross process pools)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from postprocess.layout import LayoutKind
from recorder.errors import CallVaultError


class Profile(StrEnum):
    SD = "sd"
    HD = "hd"
    FHD = "fhd"

    @property
    def size(self) -> tuple[int, int]:
        return PROFILE_SIZES[self]


PROFILE_SIZES = {Profile.SD: (640, 360), Profile.HD: (1280, 720), Profile.FHD: (1920, 1080)}
DEFAULT_VIDEO_BITRATES = {Profile.SD: 800_000, Profile.HD: 2_000_000, Profile.FHD: 4_000_000}


class OutputFormat(StrEnum):
    MP4 = "mp4"  # H.264 + AAC, fast start
    WEBM = "webm"  # VP8 or VP9 + Opus


class CompositeOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: LayoutKind = Field(default=LayoutKind.GRID, description="grid, speaker, side-by-side or pip.")
    profile: Profile = Field(default=Profile.HD, description="sd 640x360, hd 1280x720, fhd 1920x1080.")
    format: OutputFormat = OutputFormat.MP4
    audio_only: bool = Field(default=False, description="Only the audio mix (.m4a AAC, or .webm Opus).")
    out: Path | None = Field(default=None, description="Output file; default composite.<ext> in the folder.")
    fps: int = Field(default=25, ge=1, le=60)
    video_bitrate: int | None = Field(default=None, gt=0, description="bit/s; default by profile.")
    audio_bitrate: int = Field(default=128_000, gt=0)
    webm_codec: str = Field(default="vp8", pattern="^vp[89]$", description="vp8 or vp9 for WebM.")
    preset: str = Field(
        default="ultrafast",
        pattern="^(ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow)$",
        description="x264 preset (MP4).",
    )
    threads: int = Field(default=0, ge=0, description="Video encoder threads; 0: the encoder's choice.")
    names: bool = Field(
        default=True, description="Draw participants' names and roles on their tiles, and join/leave notices."
    )
    timestamp: bool = Field(
        default=True, description="Draw the UTC date and time of day (wall clock) on every frame."
    )
    parallel: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Parts of the video composed and encoded at once, on threads (x264 ultrafast only);"
        " 0: one per core. 1 (one part, x264's own threads) was as fast on 2 cores: see BENCHMARKS.md.",
    )
    start: float | None = Field(default=None, ge=0, description="Seconds from the call's start to begin.")
    end: float | None = Field(default=None, gt=0, description="Seconds from the call's start to stop.")

    @property
    def bitrate(self) -> int:
        return self.video_bitrate or DEFAULT_VIDEO_BITRATES[self.profile]

    @property
    def extension(self) -> str:
        if self.audio_only:
            return "m4a" if self.format is OutputFormat.MP4 else "webm"
        return self.format.value


class ParticipantSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    role: str | None = Field(default=None, description="agent, customer...: see postprocess.inputs.")
    start: float = Field(description="Composite seconds at which the participant's tile appears.")
    end: float = Field(description="Composite seconds at which it disappears.")
    video: bool = Field(description="Whether the participant has a video track.")


class CompositeResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path
    format: OutputFormat
    audio_only: bool
    layout: LayoutKind
    width: int = 0
    height: int = 0
    fps: int = 0
    started_at: float = Field(description="Wall-clock (Unix seconds) of the composite's first instant.")
    duration: float = Field(description="Seconds of call in the composite.")
    video_frames: int = 0
    parts: int = Field(default=1, description="Video parts composed and encoded at once.")
    participants: list[ParticipantSpan] = Field(default_factory=list, description="In join order.")
    sync: dict[str, str] = Field(default_factory=dict, description="Track -> 'rtcp' or 'arrival'.")
    warnings: list[str] = Field(default_factory=list)
    elapsed: float = Field(description="Seconds it took to build.")

    @property
    def speed(self) -> float:
        """Multiple of real time."""
        return self.duration / self.elapsed if self.elapsed > 0 else float("inf")


class CompositeError(CallVaultError):
    """The recording cannot be composited (bad folder, no usable media, unreadable tracks)."""
