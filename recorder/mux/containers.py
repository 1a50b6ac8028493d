"""Which container each codec is stored in, and the container options that make files crash-safe."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from recorder.models import Codec


class Container(StrEnum):
    WEBM = "webm"
    MATROSKA = "matroska"
    MP4 = "mp4"


@dataclass(frozen=True, slots=True)
class ContainerFormat:
    container: Container
    extension: str
    # FFmpeg muxer options for joined files. Segments are written by CallVault's own Matroska muxer
    # (matroska.py), which closes and writes a cluster every second for crash safety.
    options: dict[str, str]


FORMATS = {
    Container.WEBM: ContainerFormat(Container.WEBM, "webm", {}),
    Container.MATROSKA: ContainerFormat(Container.MATROSKA, "mkv", {}),
    Container.MP4: ContainerFormat(Container.MP4, "mp4", {"movflags": "+faststart"}),
}

# FFmpeg codec names.
AV_CODEC_NAMES = {Codec.VP8: "vp8", Codec.VP9: "vp9", Codec.H264: "h264", Codec.OPUS: "opus"}

# What a codec may be stored in; the first entry is the default.
ALLOWED = {
    Codec.VP8: (Container.WEBM, Container.MATROSKA),
    Codec.VP9: (Container.WEBM, Container.MATROSKA, Container.MP4),
    Codec.H264: (Container.MATROSKA, Container.MP4),
    Codec.OPUS: (Container.WEBM, Container.MATROSKA, Container.MP4),
}


def segment_format(codec: Codec) -> ContainerFormat:
    """Segments are always Matroska (WebM where the codec allows): streamable, so a segment cut short
    by a crash stays readable up to its last cluster, and its timestamps survive joining unchanged.
    The joined file is written in the configured container."""
    return FORMATS[ALLOWED[codec][0] if ALLOWED[codec][0] is not Container.MP4 else Container.MATROSKA]


def container_for(codec: Codec, preferred: Container | None = None) -> ContainerFormat:
    """The container to store `codec` in: `preferred` when it can hold the codec, else the default."""
    allowed = ALLOWED[codec]
    return FORMATS[preferred if preferred in allowed else allowed[0]]
