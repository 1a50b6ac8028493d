"""Typed messages passed between the recorder's parts.

`StreamSpec` is what every producer (SDP file, Janus bridge, mediasoup) hands the recorder: the codec,
payload type, clock rate and ports of one RTP stream. `Frame` is what frame assembly hands the muxer.
Frames are created per media frame on the hot path, so they are slotted dataclasses, not pydantic models.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class MediaKind(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


class Codec(StrEnum):
    """Codecs recorded without transcoding. Values are the RTP encoding names, upper-cased."""

    VP8 = "VP8"
    VP9 = "VP9"
    H264 = "H264"
    OPUS = "OPUS"

    @property
    def kind(self) -> MediaKind:
        return MediaKind.AUDIO if self is Codec.OPUS else MediaKind.VIDEO


class StreamSpec(BaseModel):
    """One RTP stream to record, as described by SDP or by an SFU's forwarder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Stable name of the stream inside its recording, e.g. 'video-1'.")
    codec: Codec
    payload_type: int = Field(ge=0, le=127)
    clock_rate: int = Field(gt=0)
    channels: int = Field(default=1, ge=1, le=8)
    port: int = Field(ge=0, le=65535, description="Local UDP port RTP arrives on (0: pick a free one).")
    rtcp_port: int | None = Field(default=None, ge=0, le=65535)
    ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    address: str = Field(default="0.0.0.0", description="Local address to bind.")
    sprop_parameter_sets: tuple[bytes, ...] = Field(
        default=(), description="H.264 SPS/PPS announced out of band (SDP fmtp sprop-parameter-sets)."
    )

    @property
    def kind(self) -> MediaKind:
        return self.codec.kind


@dataclass(slots=True)
class Frame:
    """One complete encoded frame, exactly as the sender encoded it.

    `rtp_timestamp` is unwrapped (64-bit, monotonic across 32-bit wraparound). `arrival_time` is the
    wall-clock time (time.time()) the frame's last packet arrived. `dropped_packets` counts the packets
    lost or discarded since the previous frame handed out for this stream.
    """

    data: bytes
    keyframe: bool
    rtp_timestamp: int
    arrival_time: float
    dropped_packets: int = 0
    packets: int = 1
