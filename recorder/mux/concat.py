"""Joins a track's segments at the byte level when CallVault's own muxer (matroska.py) wrote every one.

Pure: bytes in, bytes and plans out; join.py reads and writes the files. A segment is accepted only if it
is exactly what `segment_header` and `ClusterMuxer` write: an EBML header, a Segment of unknown size
holding Info (TimestampScale 1 ms, MuxingApp CallVault), Tracks (one TrackEntry, track 1, no CodecDelay)
and whole Clusters (a Timestamp, then unlaced SimpleBlocks of track 1). Anything else, a Cluster cut
short by a crash included, raises NotJoinableError and the caller remuxes with FFmpeg instead.

Clusters already carry the track's timeline, so they are copied unchanged. A block whose time does not
increase past the last one kept is dropped (and counted), as the FFmpeg join drops a packet whose dts
does not increase: its Cluster is rewritten without it, or left out when nothing of it is kept. The
joined file is what FFmpeg's Matroska muxer writes around the same blocks:

    EBML header (DocType of the joined container)
    Segment, size known
      SeekHead (Info, Tracks, Cues)
      Info: TimestampScale, MuxingApp, WritingApp, Duration
      Tracks of the first segment
      Cluster ... (the segments' own)
      Cues: a CuePoint at each video keyframe; audio alone, at the first block of each Cluster

Duration is the end of the last frame: its time plus its length, which FFmpeg takes from the Opus
packet's TOC byte and, for video, from the frame rate (here: the commonest step between frames).
"""

from __future__ import annotations

import struct

from recorder.codecs.opus import packet_samples
from recorder.mux.ebml import (
    UNKNOWN_SIZE,
    element,
    encode_id,
    encode_size,
    float64,
    master,
    string,
    uint,
    utf8,
)
from recorder.mux.matroska import (
    CLUSTER,
    CODEC_DELAY,
    CODEC_ID,
    DOC_TYPE,
    DOC_TYPE_READ_VERSION,
    DOC_TYPE_VERSION,
    EBML,
    EBML_MAX_ID_LENGTH,
    EBML_MAX_SIZE_LENGTH,
    EBML_READ_VERSION,
    EBML_VERSION,
    INFO,
    KEYFRAME_FLAG,
    MUXING_APP,
    MUXING_APP_NAME,
    SEGMENT,
    SIMPLE_BLOCK,
    TIMESTAMP,
    TIMESTAMP_SCALE,
    TIMESTAMP_SCALE_NS,
    TRACK_ENTRY,
    TRACK_NUMBER,
    TRACK_NUMBER_VINT,
    TRACKS,
    WRITING_APP,
)

# Element IDs (RFC 9559 §5.1) that segments do not use.
SEEK_HEAD = 0x114D9B74
SEEK = 0x4DBB
SEEK_ID = 0x53AB
SEEK_POSITION = 0x53AC
DURATION = 0x4489
CUES = 0x1C53BB6B
CUE_POINT = 0xBB
CUE_TIME = 0xB3
CUE_TRACK_POSITIONS = 0xB7
CUE_TRACK = 0xF7
CUE_CLUSTER_POSITION = 0xF1
CUE_RELATIVE_POSITION = 0xF0

VIDEO_CODECS = frozenset({"V_VP8", "V_VP9", "V_MPEG4/ISO/AVC"})
OPUS = "A_OPUS"
WEBM_CODECS = frozenset({"V_VP8", "V_VP9", OPUS})
LACING_BITS = 0x06
_INT16 = struct.Struct(">h")
_SIMPLE_BLOCK_OCTET = SIMPLE_BLOCK  # a 1-octet ID
_BEFORE_ALL = -(1 << 62)  # a time before any block's
_SEGMENT_ID = encode_id(SEGMENT)
_POSITION_OCTETS = 8  # SeekPosition written in 8 octets, so the SeekHead's size never depends on it


class NotJoinableError(ValueError):
    """The bytes are not exactly what CallVault's segment muxer writes: they are joined another way."""


def _vint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(data, octets) of the VINT at `pos`, without its marker (RFC 8794 §4); an all-ones value is -1."""
    if pos >= end:
        raise NotJoinableError(f"element cut short at {pos}")
    first = buf[pos]
    if first == 0:
        raise NotJoinableError(f"VINT longer than 8 octets at {pos}")
    length = 9 - first.bit_length()
    if pos + length > end:
        raise NotJoinableError(f"VINT cut short at {pos}")
    value = int.from_bytes(buf[pos : pos + length], "big") & ((1 << (7 * length)) - 1)
    return (-1 if value == (1 << (7 * length)) - 1 else value), length


def _header(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(element id, data start, data end) of the element at `pos`, which must end by `end`."""
    if pos >= end:
        raise NotJoinableError(f"element cut short at {pos}")
    id_length = 9 - buf[pos].bit_length()
    if not 1 <= id_length <= 4 or pos + id_length > end:
        raise NotJoinableError(f"bad element ID at {pos}")
    element_id = int.from_bytes(buf[pos : pos + id_length], "big")
    size, size_length = _vint(buf, pos + id_length, end)
    start = pos + id_length + size_length
    if size < 0 or start + size > end:
        raise NotJoinableError(f"element {element_id:#x} at {pos} has an unknown size or is cut short")
    return element_id, start, start + size


def _uint(buf: bytes, start: int, end: int) -> int:
    return int.from_bytes(buf[start:end], "big")


def _children(buf: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Each child's (data start, data end) by id; a repeated child is not what CallVault writes."""
    found: dict[int, tuple[int, int]] = {}
    pos = start
    while pos < end:
        child, data, pos = _header(buf, pos, end)
        if child in found:
            raise NotJoinableError(f"element {child:#x} repeated at {data}")
        found[child] = (data, pos)
    return found


class Piece:
    """A run of a segment's bytes copied unchanged (`data` empty), or a rewritten Cluster (`data`)."""

    __slots__ = ("data", "end", "start")

    def __init__(self, start: int, end: int, data: bytes = b"") -> None:
        self.start = start
        self.end = end
        self.data = data


class SegmentPlan:
    """What of one segment goes into the joined file, and what it holds."""

    __slots__ = ("first_ms", "last_ms", "packets", "pieces", "size")

    def __init__(self, size: int) -> None:
        self.size = size  # of the segment file as parsed
        self.pieces: list[Piece] = []
        self.packets = 0
        self.first_ms: int | None = None
        self.last_ms: int | None = None

    def copy(self, start: int, end: int) -> None:
        """Copy the segment's bytes start..end, in one run with the bytes before when they adjoin."""
        pieces = self.pieces
        if pieces and not pieces[-1].data and pieces[-1].end == start:
            pieces[-1].end = end
        else:
            pieces.append(Piece(start, end))


class Concat:
    """Segments in (`add`, in order), then the joined file's head and Cues around their Clusters."""

    __slots__ = (
        "_clusters_size",
        "_codec_id",
        "_cues",
        "_ebml_children",
        "_last_toc",
        "_steps",
        "_tracks",
        "_video",
        "_writing_app",
        "keyframes",
        "last_ms",
        "packets",
        "skipped",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.keyframes = 0
        self.skipped = 0
        self.last_ms: int | None = None  # time of the last block kept
        self._codec_id = ""
        self._video = False
        self._tracks = b""
        self._writing_app = ""
        self._ebml_children = (b"", b"")  # the first segment's EBML header around its DocType
        self._clusters_size = 0  # bytes of the Clusters kept so far
        self._cues: list[tuple[int, int, int]] = []  # (ms, Cluster offset among the Clusters, relative)
        self._steps: dict[int, int] = {}  # ms between consecutive video frames -> how often
        self._last_toc = b""  # the first octets of the last Opus packet kept

    def add(self, buf: bytes) -> SegmentPlan:
        """Plan the segment `buf`; raises NotJoinableError for bytes CallVault's muxer does not write."""
        end = len(buf)
        element_id, data, pos = _header(buf, 0, end)
        if element_id != EBML:
            raise NotJoinableError("no EBML header")
        ebml_children = _ebml_header(buf, data, pos)
        if buf[pos : pos + 4] != _SEGMENT_ID or buf[pos + 4 : pos + 12] != UNKNOWN_SIZE:
            raise NotJoinableError("no Segment of unknown size after the EBML header")
        element_id, data, info_end = _header(buf, pos + 12, end)
        if element_id != INFO:
            raise NotJoinableError("no Info first in the Segment")
        writing_app = _info(buf, data, info_end)
        element_id, data, pos = _header(buf, info_end, end)
        if element_id != TRACKS:
            raise NotJoinableError("no Tracks after Info")
        codec_id = _codec_id(buf, data, pos)
        if not self._codec_id:
            self._codec_id, self._video = codec_id, codec_id in VIDEO_CODECS
            self._tracks = buf[info_end:pos]
            self._writing_app = writing_app
            self._ebml_children = ebml_children
        elif codec_id != self._codec_id:
            raise NotJoinableError(f"codec {codec_id} after {self._codec_id}")
        if pos == end:
            raise NotJoinableError("a segment without a Cluster")
        plan = SegmentPlan(end)
        while pos < end:
            pos = self._cluster(buf, pos, end, plan)
        return plan

    def _cluster(self, buf: bytes, pos: int, end: int, plan: SegmentPlan) -> int:
        """Plan the Cluster at `pos`; returns where the next element starts."""
        element_id, body, cluster_end = _header(buf, pos, end)
        if element_id != CLUSTER:
            raise NotJoinableError(f"element {element_id:#x} at {pos} where a Cluster was expected")
        element_id, data, first_block = _header(buf, body, cluster_end)
        if element_id != TIMESTAMP:
            raise NotJoinableError(f"Cluster at {pos} does not start with its Timestamp")
        cluster_ms = _uint(buf, data, first_block)
        kept: list[tuple[int, int, int, bool]] = []  # (start, end, ms, keyframe) of the blocks kept
        blocks = 0
        last = self.last_ms if self.last_ms is not None else _BEFORE_ALL
        last_data = -1
        block_pos = first_block
        while block_pos < cluster_end:
            # A SimpleBlock (1-octet ID) and its size, read here rather than by _header: this is per frame.
            if buf[block_pos] != _SIMPLE_BLOCK_OCTET or block_pos + 2 > cluster_end:
                raise NotJoinableError(f"not a SimpleBlock at {block_pos}")
            length = 9 - buf[block_pos + 1].bit_length()
            data = block_pos + 1 + length
            size = int.from_bytes(buf[block_pos + 1 : data], "big") & ((1 << (7 * length)) - 1)
            block_end = data + size
            if length > 8 or size == (1 << (7 * length)) - 1 or block_end > cluster_end:
                raise NotJoinableError(f"SimpleBlock at {block_pos} has an unknown size or is cut short")
            if size < 5 or buf[data] != TRACK_NUMBER_VINT:
                raise NotJoinableError(f"not a SimpleBlock of track 1 with a frame at {block_pos}")
            flags = buf[data + 3]
            if flags & LACING_BITS:
                raise NotJoinableError(f"a laced block at {block_pos}")
            blocks += 1
            ms = cluster_ms + _INT16.unpack_from(buf, data + 1)[0]
            if ms < 0:
                raise NotJoinableError(f"a block before time 0 at {block_pos}")
            if ms <= last:
                self.skipped += 1
            else:
                if self._video and last != _BEFORE_ALL:
                    self._steps[ms - last] = self._steps.get(ms - last, 0) + 1
                last = ms
                last_data = data + 4
                kept.append((block_pos, block_end, ms, flags & KEYFRAME_FLAG != 0))
            block_pos = block_end
        if not kept:
            return cluster_end
        self.last_ms = last
        if not self._video:
            self._last_toc = buf[last_data : last_data + 2]
        if len(kept) == blocks:
            plan.copy(pos, cluster_end)
            size = cluster_end - pos
            relative = [start - body for start, _, _, _ in kept]
        else:  # the same Timestamp and the blocks kept
            parts = [buf[body:first_block]]
            relative = []
            at = first_block - body
            for start, stop, _, _ in kept:
                relative.append(at)
                parts.append(buf[start:stop])
                at += stop - start
            cluster = element(CLUSTER, b"".join(parts))
            plan.pieces.append(Piece(0, 0, cluster))
            size = len(cluster)
        cue = True
        for (_, _, ms, keyframe), at in zip(kept, relative, strict=True):
            if keyframe if self._video else cue:
                self._cues.append((ms, self._clusters_size, at))
                cue = False
            self.keyframes += keyframe
            if plan.first_ms is None:
                plan.first_ms = ms
        plan.last_ms = kept[-1][2]
        plan.packets += len(kept)
        self.packets += len(kept)
        self._clusters_size += size
        return cluster_end

    def duration_ms(self) -> int:
        """The end of the last frame kept: its time plus its length, as FFmpeg tells it."""
        if self.last_ms is None:
            raise NotJoinableError("no frame to join")
        if not self._video:
            samples = packet_samples(self._last_toc) or 0  # too short to tell: no length added
            return self.last_ms + (samples + 24) // 48
        if not self._steps:
            return self.last_ms
        step, seen = 0, 0
        for candidate, count in self._steps.items():
            if count > seen:
                step, seen = candidate, count
        # FFmpeg guesses a frame rate (r_frame_rate) and lasts a frame 1/rate, rounded down to the ms.
        rate = round(1000 / step)
        return self.last_ms + (1000 // rate if rate else step)

    def finish(self, doc_type: str) -> tuple[bytes, bytes]:
        """(everything before the Clusters, the Cues after them) of the joined file, DocType `doc_type`."""
        if doc_type == "webm" and self._codec_id not in WEBM_CODECS:
            raise NotJoinableError(f"{self._codec_id} is not a WebM codec")
        duration = self.duration_ms()
        if duration <= 0:
            raise NotJoinableError("a Duration of 0")
        before, after = self._ebml_children
        ebml_header = master(EBML, before, string(DOC_TYPE, doc_type), after)
        info = master(
            INFO,
            uint(TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS),
            utf8(MUXING_APP, MUXING_APP_NAME),
            utf8(WRITING_APP, self._writing_app),
            float64(DURATION, float(duration)),
        )
        seek_head_size = len(_seek_head(0, 0, 0))
        tracks_at = seek_head_size + len(info)
        clusters_at = tracks_at + len(self._tracks)
        cues = master(
            CUES,
            *(
                master(
                    CUE_POINT,
                    uint(CUE_TIME, ms),
                    master(
                        CUE_TRACK_POSITIONS,
                        uint(CUE_TRACK, 1),
                        uint(CUE_CLUSTER_POSITION, clusters_at + cluster),
                        uint(CUE_RELATIVE_POSITION, relative),
                    ),
                )
                for ms, cluster, relative in self._cues
            ),
        )
        cues_at = clusters_at + self._clusters_size
        segment_size = cues_at + len(cues)
        head = b"".join(
            (
                ebml_header,
                _SEGMENT_ID,
                encode_size(segment_size, 8),
                _seek_head(seek_head_size, tracks_at, cues_at),
                info,
                self._tracks,
            )
        )
        return head, cues


def _seek_head(info_at: int, tracks_at: int, cues_at: int) -> bytes:
    """A SeekHead to Info, Tracks and Cues; its size is the same whatever the positions."""
    return master(
        SEEK_HEAD,
        *(
            master(SEEK, element(SEEK_ID, encode_id(target)), element(SEEK_POSITION, at.to_bytes(8, "big")))
            for target, at in ((INFO, info_at), (TRACKS, tracks_at), (CUES, cues_at))
        ),
    )


def _ebml_header(buf: bytes, start: int, end: int) -> tuple[bytes, bytes]:
    """The children of an EBML header as CallVault writes it, before and after its DocType element."""
    fields = _children(buf, start, end)
    want = {EBML_VERSION: 1, EBML_READ_VERSION: 1, EBML_MAX_ID_LENGTH: 4, EBML_MAX_SIZE_LENGTH: 8}
    for child, value in want.items():
        if child not in fields or _uint(buf, *fields[child]) != value:
            raise NotJoinableError(f"EBML header element {child:#x} is not {value}")
    if set(fields) != set(want) | {DOC_TYPE, DOC_TYPE_VERSION, DOC_TYPE_READ_VERSION}:
        raise NotJoinableError("an EBML header with other elements than CallVault writes")
    pos = start
    while True:
        child, _, after = _header(buf, pos, end)
        if child == DOC_TYPE:
            return buf[start:pos], buf[after:end]
        pos = after


def _info(buf: bytes, start: int, end: int) -> str:
    """The WritingApp of an Info as CallVault writes it."""
    fields = _children(buf, start, end)
    if set(fields) != {TIMESTAMP_SCALE, MUXING_APP, WRITING_APP}:
        raise NotJoinableError("an Info with other elements than CallVault writes")
    if _uint(buf, *fields[TIMESTAMP_SCALE]) != TIMESTAMP_SCALE_NS:
        raise NotJoinableError("a TimestampScale other than 1 ms")
    app_start, app_end = fields[MUXING_APP]
    if buf[app_start:app_end] != MUXING_APP_NAME.encode():
        raise NotJoinableError("a segment not written by CallVault")
    app_start, app_end = fields[WRITING_APP]
    return buf[app_start:app_end].decode("utf-8", "replace")


def _codec_id(buf: bytes, start: int, end: int) -> str:
    """The CodecID of Tracks holding one TrackEntry, track 1, as CallVault writes it."""
    element_id, data, entry_end = _header(buf, start, end)
    if element_id != TRACK_ENTRY or entry_end != end:
        raise NotJoinableError("Tracks without exactly one TrackEntry")
    fields = _children(buf, data, entry_end)
    if TRACK_NUMBER not in fields or _uint(buf, *fields[TRACK_NUMBER]) != 1:
        raise NotJoinableError("a track other than track 1")
    if CODEC_DELAY in fields and _uint(buf, *fields[CODEC_DELAY]):
        raise NotJoinableError("a CodecDelay (FFmpeg shifts times by it)")
    if CODEC_ID not in fields:
        raise NotJoinableError("a TrackEntry without CodecID")
    codec_start, codec_end = fields[CODEC_ID]
    codec_id = buf[codec_start:codec_end].decode("ascii", "replace")
    if codec_id not in VIDEO_CODECS and codec_id != OPUS:
        raise NotJoinableError(f"codec {codec_id} is not one CallVault records")
    return codec_id
