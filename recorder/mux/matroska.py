"""A minimal Matroska/WebM muxer for one track of already encoded frames (RFC 9559, WebM guidelines).

Pure: builds bytes, never touches files (matroska_writer.py does the I/O). The layout is what a live
writer can produce without seeking back:

    EBML header (DocType webm or matroska)
    Segment, size unknown
      Info: TimestampScale 1 ms, MuxingApp, WritingApp
      Tracks: one TrackEntry (CodecID, CodecPrivate, Video or Audio)
      Cluster (known size): Timestamp, SimpleBlock, SimpleBlock, ...
      Cluster ...

A Cluster is complete before it is handed out, so a file cut anywhere holds every block of its whole
clusters. A new Cluster starts at each video keyframe, when the next block is `cluster_ms` or more
after the Cluster's timestamp (so a block's relative timestamp always fits its signed 16 bits), and
when the open Cluster has grown past `cluster_bytes`. No Cues, no Duration, no SeekHead: segments are
read front to back; the joined track file adds them (recorder/mux/concat.py copies these Clusters
into it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from recorder.mux.ebml import UNKNOWN_SIZE, element, encode_id, float64, master, string, uint, utf8

# Element IDs (RFC 8794 §11.2 for the EBML header, RFC 9559 §5.1 for Matroska).
EBML = 0x1A45DFA3
EBML_VERSION = 0x4286
EBML_READ_VERSION = 0x42F7
EBML_MAX_ID_LENGTH = 0x42F2
EBML_MAX_SIZE_LENGTH = 0x42F3
DOC_TYPE = 0x4282
DOC_TYPE_VERSION = 0x4287
DOC_TYPE_READ_VERSION = 0x4285
SEGMENT = 0x18538067
INFO = 0x1549A966
TIMESTAMP_SCALE = 0x2AD7B1
MUXING_APP = 0x4D80
WRITING_APP = 0x5741
TRACKS = 0x1654AE6B
TRACK_ENTRY = 0xAE
TRACK_NUMBER = 0xD7
TRACK_UID = 0x73C5
TRACK_TYPE = 0x83
FLAG_LACING = 0x9C
LANGUAGE = 0x22B59C
CODEC_ID = 0x86
CODEC_PRIVATE = 0x63A2
CODEC_DELAY = 0x56AA
SEEK_PRE_ROLL = 0x56BB
VIDEO = 0xE0
PIXEL_WIDTH = 0xB0
PIXEL_HEIGHT = 0xBA
AUDIO = 0xE1
SAMPLING_FREQUENCY = 0xB5
CHANNELS = 0x9F
CLUSTER = 0x1F43B675
TIMESTAMP = 0xE7
SIMPLE_BLOCK = 0xA3

TRACK_TYPE_VIDEO, TRACK_TYPE_AUDIO = 1, 2
TIMESTAMP_SCALE_NS = 1_000_000  # timestamps in milliseconds
KEYFRAME_FLAG = 0x80  # SimpleBlock flags (RFC 9559 §10.2): keyframe, no lacing, visible
TRACK_NUMBER_VINT = 0x81  # track 1 as a 1-octet VINT
OPUS_SEEK_PRE_ROLL_NS = 80_000_000  # 80 ms, as the Opus mapping asks
MUXING_APP_NAME = "CallVault"
CLUSTER_MS = 1000
CLUSTER_BYTES = 2 << 20

_INT16_MIN, _INT16_MAX = -(1 << 15), (1 << 15) - 1
_BLOCK_HEAD = struct.Struct(">BhB")  # track number VINT, relative timestamp, flags
_SIMPLE_BLOCK_ID = encode_id(SIMPLE_BLOCK)
_CLUSTER_ID = encode_id(CLUSTER)
_BLOCK_OVERHEAD = 1 + 2 + 1


@dataclass(frozen=True, slots=True)
class TrackParams:
    """What the TrackEntry says about the one track of a segment."""

    codec_id: str  # "V_VP8", "V_VP9", "V_MPEG4/ISO/AVC", "A_OPUS"
    video: bool
    codec_private: bytes = b""
    width: int | None = None
    height: int | None = None
    sampling_frequency: float = 48000.0
    channels: int = 2
    codec_delay_ns: int = 0
    seek_pre_roll_ns: int = 0


def segment_header(doc_type: str, track: TrackParams, writing_app: str = MUXING_APP_NAME) -> bytes:
    """EBML header, the start of a Segment of unknown size, its Info and Tracks."""
    ebml_header = master(
        EBML,
        uint(EBML_VERSION, 1),
        uint(EBML_READ_VERSION, 1),
        uint(EBML_MAX_ID_LENGTH, 4),
        uint(EBML_MAX_SIZE_LENGTH, 8),
        string(DOC_TYPE, doc_type),
        # CodecDelay and SeekPreRoll came with version 4; everything else here is version 2.
        uint(DOC_TYPE_VERSION, 4 if track.codec_delay_ns or track.seek_pre_roll_ns else 2),
        uint(DOC_TYPE_READ_VERSION, 2),  # SimpleBlock needs a version 2 reader
    )
    info = master(
        INFO,
        uint(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS),
        utf8(MUXING_APP, MUXING_APP_NAME),
        utf8(WRITING_APP, writing_app),
    )
    entry = [
        uint(TRACK_NUMBER, 1),
        uint(TRACK_UID, 1),
        uint(TRACK_TYPE, TRACK_TYPE_VIDEO if track.video else TRACK_TYPE_AUDIO),
        uint(FLAG_LACING, 0),
        string(LANGUAGE, "und"),
        string(CODEC_ID, track.codec_id),
    ]
    if track.codec_private:
        entry.append(element(CODEC_PRIVATE, track.codec_private))
    if track.codec_delay_ns:
        entry.append(uint(CODEC_DELAY, track.codec_delay_ns))
    if track.seek_pre_roll_ns:
        entry.append(uint(SEEK_PRE_ROLL, track.seek_pre_roll_ns))
    if track.video:
        # PixelWidth and PixelHeight have no default and must not be 0 (RFC 9559 §5.1.4.1.28.6-7):
        # when the size is unknown, the Video element is left out and the decoder reads it from the
        # bitstream.
        if track.width and track.height:
            entry.append(master(VIDEO, uint(PIXEL_WIDTH, track.width), uint(PIXEL_HEIGHT, track.height)))
    else:
        entry.append(
            master(
                AUDIO, float64(SAMPLING_FREQUENCY, track.sampling_frequency), uint(CHANNELS, track.channels)
            )
        )
    tracks = master(TRACKS, master(TRACK_ENTRY, *entry))
    return ebml_header + encode_id(SEGMENT) + UNKNOWN_SIZE + info + tracks


def _vint_size(size: int) -> bytes:
    """encode_size for the sizes of blocks and clusters, unrolled for the hot path."""
    if size < 0x7F:
        return (0x80 | size).to_bytes(1, "big")
    if size < 0x3FFF:
        return (0x4000 | size).to_bytes(2, "big")
    if size < 0x1FFFFF:
        return (0x200000 | size).to_bytes(3, "big")
    if size < 0x0FFFFFFF:
        return (0x10000000 | size).to_bytes(4, "big")
    return ((1 << 56) | size).to_bytes(8, "big")


class ClusterMuxer:
    """Frames in, finished Clusters out (bytes). Timestamps are in milliseconds on the file's scale."""

    __slots__ = ("_bytes", "_cluster_bytes", "_cluster_ms", "_parts", "_start", "_video")

    def __init__(self, video: bool, cluster_ms: int = CLUSTER_MS, cluster_bytes: int = CLUSTER_BYTES) -> None:
        if not 0 < cluster_ms <= _INT16_MAX:
            raise ValueError(f"cluster length {cluster_ms} ms does not fit a block's 16-bit timestamp")
        self._video = video
        self._cluster_ms = cluster_ms
        self._cluster_bytes = cluster_bytes
        self._parts: list[bytes] = []
        self._bytes = 0
        self._start = 0

    def add(self, data: bytes, timestamp_ms: int, keyframe: bool) -> bytes | None:
        """Add one frame as a SimpleBlock. Returns the Cluster this frame closed, if it started one."""
        finished = None
        rel = timestamp_ms - self._start
        if self._parts and (
            (keyframe and self._video)
            or rel >= self._cluster_ms
            or rel < 0
            or self._bytes >= self._cluster_bytes
        ):
            finished = self.flush()
        if not self._parts:
            self._start = timestamp_ms
            rel = 0
        head = _BLOCK_HEAD.pack(TRACK_NUMBER_VINT, rel, KEYFRAME_FLAG if keyframe else 0)
        head = _SIMPLE_BLOCK_ID + _vint_size(len(data) + _BLOCK_OVERHEAD) + head
        self._parts.append(head)
        self._parts.append(data)
        self._bytes += len(head) + len(data)
        return finished

    def flush(self) -> bytes | None:
        """The open Cluster, complete; None when it holds no block."""
        if not self._parts:
            return None
        timestamp = uint(TIMESTAMP, self._start)
        body_size = len(timestamp) + self._bytes
        self._parts[0] = _CLUSTER_ID + _vint_size(body_size) + timestamp + self._parts[0]
        cluster = b"".join(self._parts)
        self._parts = []
        self._bytes = 0
        return cluster

    @property
    def pending(self) -> bool:
        return bool(self._parts)
