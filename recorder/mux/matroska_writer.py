"""Writes one Matroska/WebM segment file: the I/O around the pure muxer in matroska.py.

The header goes to the file when the segment opens; after that, one write per Cluster, when it
closes (every second and at each video keyframe), so a process killed at any moment leaves every
closed Cluster on disk and loses at most about one second. Nothing is written per frame. The bytes are
hashed (SHA-256) as they are written, so closing a segment never reads it back.

A write that fails (a full disk) is undone: the file is cut back to its last whole Cluster, so what is on
disk is always the header and whole Clusters, and `size`, `digest()` and `frames_on_disk` describe it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from recorder.codecs.opus import OPUS_HEAD_MAGIC
from recorder.errors import MalformedPacketError, MuxError
from recorder.models import Codec
from recorder.mux.avc import annexb_to_avcc, decoder_configuration
from recorder.mux.matroska import (
    CLUSTER_BYTES,
    CLUSTER_MS,
    OPUS_SEEK_PRE_ROLL_NS,
    ClusterMuxer,
    TrackParams,
    segment_header,
)
from recorder.mux.write_errors import write_error

log = logging.getLogger(__name__)

CODEC_IDS = {Codec.VP8: "V_VP8", Codec.VP9: "V_VP9", Codec.H264: "V_MPEG4/ISO/AVC", Codec.OPUS: "A_OPUS"}
_OPUS_HEAD_CHANNELS = 9  # offset of the channel count in an OpusHead (RFC 7845 §5.1)
_OPUS_HEAD_PRE_SKIP = 10  # offset of the 16-bit little-endian pre-skip


def track_params(
    codec: Codec, clock_rate: int, width: int | None, height: int | None, extradata: bytes, channels: int = 2
) -> TrackParams:
    """The TrackEntry of a segment of `codec` that starts with these codec parameters."""
    codec_id = CODEC_IDS[codec]
    if codec is Codec.OPUS:
        pre_skip = 0
        if extradata[:8] == OPUS_HEAD_MAGIC and len(extradata) >= 19:
            channels = extradata[_OPUS_HEAD_CHANNELS]
            pre_skip = int.from_bytes(extradata[_OPUS_HEAD_PRE_SKIP : _OPUS_HEAD_PRE_SKIP + 2], "little")
        return TrackParams(
            codec_id,
            video=False,
            codec_private=extradata,
            sampling_frequency=float(clock_rate),
            channels=channels,
            codec_delay_ns=pre_skip * 1_000_000_000 // 48000,
            seek_pre_roll_ns=OPUS_SEEK_PRE_ROLL_NS,
        )
    private = b""
    if codec is Codec.H264 and extradata:
        try:
            private = decoder_configuration(extradata)
        except MalformedPacketError as exc:
            # Still record: without a configuration record the frames stay in Annex B, which
            # decoders detect on their own (as FFmpeg's muxer does without extradata).
            log.warning("H.264 parameter sets unusable for the container, frames kept in Annex B: %s", exc)
    elif extradata:
        private = extradata
    return TrackParams(codec_id, video=True, codec_private=private, width=width, height=height)


class SegmentFile:
    """One open segment file. Frames carry timestamps in `clock_rate` units; the file counts in ms."""

    __slots__ = (
        "_avcc",
        "_clock",
        "_file",
        "_half",
        "_hash",
        "_muxer",
        "_pending",
        "_pending_keys",
        "frames_on_disk",
        "keyframes_on_disk",
        "path",
        "size",
    )

    def __init__(
        self,
        path: Path,
        doc_type: str,
        codec: Codec,
        params: TrackParams,
        clock_rate: int,
        cluster_ms: int = CLUSTER_MS,
        cluster_bytes: int = CLUSTER_BYTES,
    ) -> None:
        self.path = path
        self.size = 0
        self.frames_on_disk = 0  # frames in the Clusters written so far
        self.keyframes_on_disk = 0
        self._pending = 0  # frames in the open Cluster
        self._pending_keys = 0
        self._clock = clock_rate
        self._half = clock_rate // 2
        # Matroska stores H.264 as length-prefixed NAL units; without a decoder configuration record
        # (no SPS/PPS known) the frames stay in Annex B, which decoders detect.
        self._avcc = codec is Codec.H264 and bool(params.codec_private)
        self._muxer = ClusterMuxer(params.video, cluster_ms, cluster_bytes)
        self._hash = hashlib.sha256()
        try:
            self._file = path.open("wb", buffering=0)
        except OSError as exc:
            raise write_error(f"segment {path}", exc) from exc
        try:
            self._write(segment_header(doc_type, params))
        except MuxError:
            self._file.close()
            path.unlink(missing_ok=True)  # a header alone holds nothing
            raise

    def write(self, data: bytes, pts: int, keyframe: bool) -> None:
        """Add one frame with its presentation time in clock-rate units."""
        if pts < 0:
            raise MuxError(f"segment {self.path}: frame at negative time {pts}")
        if self._avcc:
            data = annexb_to_avcc(data)
        cluster = self._muxer.add(data, (pts * 1000 + self._half) // self._clock, keyframe)
        if cluster is not None:
            self._write(cluster)
            self._cluster_written()
        self._pending += 1
        self._pending_keys += keyframe

    def close(self) -> str:
        """Write the open Cluster and close the file; returns the file's SHA-256 (hex)."""
        try:
            cluster = self._muxer.flush()
            if cluster is not None:
                self._write(cluster)
                self._cluster_written()
        finally:
            self._file.close()
        return self._hash.hexdigest()

    def abandon(self) -> None:
        """Close the file without writing what is still pending (after an error)."""
        self._file.close()

    def digest(self) -> str:
        """SHA-256 (hex) of the `size` bytes written so far."""
        return self._hash.hexdigest()

    def _cluster_written(self) -> None:
        self.frames_on_disk += self._pending
        self.keyframes_on_disk += self._pending_keys
        self._pending = self._pending_keys = 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError("the file accepted no bytes")
                view = view[written:]
        except OSError as exc:
            try:  # drop the part of `data` that did get written: the file ends at a whole element
                os.ftruncate(self._file.fileno(), self.size)
            except OSError as undo:
                log.error(
                    "segment %s: cannot cut back a failed write to %d bytes: %s", self.path, self.size, undo
                )
            raise write_error(f"segment {self.path}", exc) from exc
        self._hash.update(data)
        self.size += len(data)
