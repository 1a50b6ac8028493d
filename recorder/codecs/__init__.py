"""RTP payload formats: one small module per codec, all behind the Depacketizer contract (base.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from recorder.codecs.base import DepacketizedFrame, Depacketizer
from recorder.codecs.h264 import H264Depacketizer
from recorder.codecs.opus import OpusDepacketizer
from recorder.codecs.vp8 import Vp8Depacketizer
from recorder.codecs.vp9 import Vp9Depacketizer
from recorder.models import Codec

_FACTORIES: dict[Codec, Callable[[Sequence[bytes], int], Depacketizer]] = {
    Codec.VP8: lambda _sprop, _channels: Vp8Depacketizer(),
    Codec.VP9: lambda _sprop, _channels: Vp9Depacketizer(),
    Codec.H264: lambda sprop, _channels: H264Depacketizer(sprop),
    Codec.OPUS: lambda _sprop, channels: OpusDepacketizer(channels),
}


def depacketizer_for(
    codec: Codec, *, sprop_parameter_sets: Sequence[bytes] = (), channels: int = 2
) -> Depacketizer:
    """A fresh depacketizer for one stream of `codec`."""
    return _FACTORIES[codec](sprop_parameter_sets, channels)


__all__ = [
    "DepacketizedFrame",
    "Depacketizer",
    "H264Depacketizer",
    "OpusDepacketizer",
    "Vp8Depacketizer",
    "Vp9Depacketizer",
    "depacketizer_for",
]
