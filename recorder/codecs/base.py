"""The contract every RTP payload format implements (one small module per codec).

Frame assembly (recorder/assembly/frames.py) groups in-order packets into frames using
`is_frame_start` and the RTP marker bit/timestamp, then calls `depacketize` with the payloads of one
complete frame. Depacketizers are pure: no I/O, no asyncio. A depacketizer instance belongs to one
stream and may keep state across frames (H.264 keeps the latest SPS/PPS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from recorder.models import Codec


@dataclass(slots=True, frozen=True)
class DepacketizedFrame:
    """The encoded frame carried by a run of RTP payloads.

    `data` is the codec's elementary-stream frame: the VP8/VP9 frame, Opus packet, or H.264 access unit
    in Annex B (4-byte start codes) with the current SPS/PPS in front of every keyframe. `keyframe`
    is true only when a decoder can start at this frame. `width`/`height` are set on keyframes whose
    bitstream states the picture size, else None.
    """

    data: bytes
    keyframe: bool
    width: int | None = None
    height: int | None = None


class Depacketizer(Protocol):
    codec: Codec

    def is_frame_start(self, payload: bytes) -> bool:
        """True if this payload begins a new frame, as far as the payload format can tell."""
        ...

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        """Join the payloads of one complete frame (in sequence order). Raises MalformedPacketError."""
        ...

    def codec_extradata(self) -> bytes:
        """Out-of-band decoder configuration for the container (H.264: Annex B SPS+PPS), or b''."""
        ...
