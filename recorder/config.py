"""Recorder settings: every field has a default, bounds and a description (docs/configuration.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from recorder.mux.containers import Container


class RecorderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_seconds: float = Field(
        default=4.0,
        gt=0.2,
        le=600,
        description="Length of the crash-safe segments media is written in. Video segments start at"
        " keyframes, so a video segment runs until the first keyframe after this; one is requested.",
    )
    h264_container: Container = Field(
        default=Container.MATROSKA, description="Container for H.264 tracks: matroska or mp4."
    )
    audio_container: Container = Field(
        default=Container.WEBM, description="Container for Opus tracks: webm, matroska or mp4."
    )
    reorder_packets: int = Field(
        default=128,
        ge=1,
        le=4096,
        description="Packets the reorder buffer holds while waiting for a missing one.",
    )
    reorder_delay: float = Field(
        default=0.15, ge=0, le=5, description="Seconds the reorder buffer waits for a missing packet."
    )
    mux_threads: int = Field(default=2, ge=1, le=64, description="Threads that mux and write files.")
    keep_segments: bool = Field(
        default=True,
        description="Keep the segment files after joining them into one file per track (they are what"
        " was written during the call, hashed in the manifest's chain).",
    )
    capture: bool = Field(
        default=False,
        description="Keep every RTP and RTCP packet as received in pcapng captures beside each track"
        " (<track>.capture/, docs/forensics.md); a room's policy can turn it on or off.",
    )
    tick_interval: float = Field(
        default=0.05, gt=0, le=1, description="Seconds between timer ticks that flush frames to the muxers."
    )
