"""Opus over RTP (RFC 7587): each packet carries one Opus packet; every frame is a sync point."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.errors import MalformedPacketError
from recorder.models import Codec


def opus_head(channels: int, sample_rate: int = 48000, pre_skip: int = 0) -> bytes:
    """The 19-byte OpusHead (RFC 7845 §5.1), the CodecPrivate of Opus in Matroska/WebM and MP4."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, sample_rate, 0, 0)


class OpusDepacketizer:
    codec = Codec.OPUS

    def __init__(self, channels: int = 2) -> None:
        self._head = opus_head(channels)

    def is_frame_start(self, payload: bytes) -> bool:
        return True

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        if len(payloads) != 1 or not payloads[0]:
            raise MalformedPacketError("Opus RTP payload is empty" if payloads else "no Opus payload")
        return DepacketizedFrame(payloads[0], True)

    def codec_extradata(self) -> bytes:
        return self._head
