"""Settings of the composites `callvault serve` builds by itself when a recording finishes."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postprocess.layout import LayoutKind
from postprocess.options import CompositeOptions, OutputFormat, Profile

COMPOSITE_OUTPUT = "composite"
"""The value of a recording's `outputs` tag (a room's policy) that asks for a composite."""


class CompositeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Build composites of recordings whose room's policy does not say (a room's `outputs`"
        " decides for its own recordings: with `composite` in it, always; without, never).",
    )
    profiles: list[Profile] = Field(
        default_factory=lambda: [Profile.HD],
        min_length=1,
        description="One composite per profile: sd 640x360, hd 1280x720, fhd 1920x1080.",
    )
    audio_mix: bool = Field(default=False, description="Also store an audio-only mix of the call.")
    layout: LayoutKind = Field(default=LayoutKind.GRID, description="grid, speaker, side-by-side or pip.")
    format: OutputFormat = Field(default=OutputFormat.MP4, description="mp4 (H.264 + AAC) or webm.")
    webm_codec: str = Field(default="vp8", pattern="^vp[89]$", description="vp8 or vp9 for WebM.")
    video_bitrates: dict[Profile, int] = Field(
        default_factory=dict,
        description="bit/s per profile; a profile not named here gets 800k (sd), 2M (hd) or 4M (fhd).",
    )
    audio_bitrate: int = Field(default=128_000, gt=0, description="bit/s of the AAC or Opus mix.")
    fps: int = Field(default=25, ge=1, le=60)
    preset: str = Field(default=CompositeOptions().preset, description="x264 preset (MP4).")
    names: bool = Field(
        default=True, description="Draw participants' names and roles on their tiles, and join/leave notices."
    )
    timestamp: bool = Field(default=True, description="Draw the UTC date and time of day on every frame.")
    processes: int = Field(default=1, ge=1, le=64, description="Composites built at once (worker processes).")
    queue: int = Field(default=64, ge=0, description="Composites waiting for a worker beyond those.")
    timeout: float = Field(
        default=3600.0, gt=0, description="Seconds one composite may take before its worker is replaced."
    )

    @field_validator("video_bitrates")
    @classmethod
    def _positive(cls, value: dict[Profile, int]) -> dict[Profile, int]:
        for profile, bitrate in value.items():
            if bitrate <= 0:
                raise ValueError(f"video_bitrates.{profile.value} must be > 0")
        return value

    def wanted(self, outputs_tag: str | None) -> bool:
        """Whether a recording with this `outputs` tag (None: its room's policy does not say) gets one."""
        if outputs_tag is None:
            return self.enabled
        return COMPOSITE_OUTPUT in {o.strip() for o in outputs_tag.split(",")}

    def jobs(self, folder: Path) -> list[CompositeOptions]:
        """The composites to build of the recording in `folder`: one per profile, then the audio mix."""
        common = {
            "layout": self.layout,
            "format": self.format,
            "fps": self.fps,
            "audio_bitrate": self.audio_bitrate,
            "webm_codec": self.webm_codec,
            "preset": self.preset,
            "names": self.names,
            "timestamp": self.timestamp,
        }
        ext = self.format.value
        jobs = [
            CompositeOptions(
                profile=profile,
                video_bitrate=self.video_bitrates.get(profile),
                out=folder / f"composite-{profile.value}.{ext}",
                **common,  # type: ignore[arg-type]
            )
            for profile in dict.fromkeys(self.profiles)
        ]
        if self.audio_mix:
            audio = CompositeOptions(audio_only=True, **common)  # type: ignore[arg-type]
            jobs.append(audio.model_copy(update={"out": folder / f"composite-audio.{audio.extension}"}))
        return jobs
