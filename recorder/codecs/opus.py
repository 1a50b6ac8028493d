"""Opus over RTP (RFC 7587): each RTP payload is exactly one Opus packet (§4.2), and every Opus packet
can be decoded on its own, so every frame is a keyframe. Also the OpusHead the container needs."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from recorder.codecs.base import DepacketizedFrame
from recorder.errors import MalformedPacketError
from recorder.models import Codec

OPUS_HEAD_MAGIC = b"OpusHead"
OPUS_HEAD_VERSION = 1
# version, channel count, pre-skip, input sample rate, output gain, channel mapping family (RFC 7845 §5.1)
_OPUS_HEAD = struct.Struct("<BBHIhB")
MAX_FAMILY_0_CHANNELS = 2
# Opus frame sizes in 48 kHz samples by the TOC byte's config (RFC 6716 §3.1): SILK, hybrid, CELT.
_FRAME_SAMPLES = (480, 960, 1920, 2880) * 3 + (480, 960) * 2 + (120, 240, 480, 960) * 4


def packet_samples(packet: bytes) -> int | None:
    """An Opus packet's length in 48 kHz samples, by its TOC byte (RFC 6716 §3.1); None when the packet
    is too short to tell (empty, or a code 3 packet without its frame count byte)."""
    if not packet:
        return None
    toc = packet[0]
    code = toc & 3
    if code == 3:
        if len(packet) < 2:
            return None
        frames = packet[1] & 0x3F
    else:
        frames = 1 if code == 0 else 2
    return _FRAME_SAMPLES[toc >> 3] * frames


def opus_head(channels: int, sample_rate: int = 48000, pre_skip: int = 0) -> bytes:
    """The 19-byte OpusHead (RFC 7845 §5.1) with channel mapping family 0, the CodecPrivate of Opus in
    Matroska/WebM. Family 0 covers mono and stereo, all RFC 7587 carries."""
    if not 1 <= channels <= MAX_FAMILY_0_CHANNELS:
        raise ValueError(f"OpusHead with mapping family 0 has 1 or 2 channels, not {channels}")
    if not 0 <= pre_skip <= 0xFFFF:
        raise ValueError(f"Opus pre-skip {pre_skip} does not fit 16 bits")
    if not 0 <= sample_rate <= 0xFFFFFFFF:
        raise ValueError(f"Opus input sample rate {sample_rate} does not fit 32 bits")
    return OPUS_HEAD_MAGIC + _OPUS_HEAD.pack(OPUS_HEAD_VERSION, channels, pre_skip, sample_rate, 0, 0)


class OpusDepacketizer:
    """One Opus stream. `channels` only shapes the OpusHead; the packets say how they are coded."""

    codec = Codec.OPUS

    def __init__(self, channels: int = 2) -> None:
        self._head = opus_head(channels)

    def is_frame_start(self, payload: bytes) -> bool:
        return True

    def depacketize(self, payloads: Sequence[bytes]) -> DepacketizedFrame:
        if len(payloads) != 1:
            raise MalformedPacketError(
                f"an Opus frame is exactly one RTP packet (RFC 7587 §4.2), not {len(payloads)}"
            )
        payload = payloads[0]
        if not payload:
            raise MalformedPacketError("Opus RTP payload is empty (an Opus packet has at least its TOC byte)")
        return DepacketizedFrame(payload, True)

    def codec_extradata(self) -> bytes:
        return self._head
