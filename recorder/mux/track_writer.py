"""Passthrough muxing of one track into independently playable segment files (no transcoding).

A TrackWriter is confined to one mux worker thread. It obeys the pipeline's commands: `SegmentStart`
closes the open segment and opens the next, `Frame` is written as one SimpleBlock carrying the
sender's bytes unchanged (H.264: the same NAL units, length-prefixed as Matroska requires). Segments
are written by CallVault's own Matroska/WebM muxer (matroska.py), a Cluster at a time. Segment files
live in `<folder>/<track>.segments/NNNNNN.<ext>`; each closed one is listed, with its size and
SHA-256, in the track's summary.

When a write fails (a full disk), the open segment keeps its whole Clusters (SegmentFile cuts off the
failed write) and is listed like a closed one with the frames it holds; a segment that holds no frame
is removed. The MuxError is raised on, and the track writes nothing more.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from recorder.assembly.frame import Frame
from recorder.assembly.pipeline import MuxItem, SegmentStart
from recorder.errors import MuxError
from recorder.models import SegmentInfo, StreamSpec
from recorder.mux.containers import Container, ContainerFormat
from recorder.mux.matroska_writer import SegmentFile, track_params

log = logging.getLogger(__name__)

HASH_CHUNK = 1 << 20


def segments_dir(folder: Path, track: str) -> Path:
    return folder / f"{track}.segments"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class TrackWriter:
    def __init__(self, folder: Path, spec: StreamSpec, fmt: ContainerFormat) -> None:
        if fmt.container not in (Container.WEBM, Container.MATROSKA):
            raise MuxError(f"segments are Matroska or WebM, not {fmt.container.value}")
        self.folder = folder
        self.spec = spec
        self.fmt = fmt
        self.segments: list[SegmentInfo] = []
        self.frames_written = 0  # frames in the segments listed
        self.keyframes_written = 0
        self._dir = segments_dir(folder, spec.name)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._doc_type = "webm" if fmt.container is Container.WEBM else "matroska"
        self._file: SegmentFile | None = None
        self._seg_first = 0
        self._seg_last = 0
        self._seg_last_on_disk = 0  # RTP timestamp of the last frame of the Clusters written
        self._seg_frames = 0
        self._next_index = len(list(self._dir.glob(f"*.{fmt.extension}")))

    def write(self, items: list[MuxItem]) -> None:
        for item in items:
            if isinstance(item, SegmentStart):
                self._close_segment()
                self._open_segment(item)
            else:
                self._write_frame(item)

    def close(self) -> list[SegmentInfo]:
        """Close the open segment; idempotent. Returns every segment written."""
        self._close_segment()
        return self.segments

    def _open_segment(self, start: SegmentStart) -> None:
        spec = self.spec
        path = self._dir / f"{self._next_index:06d}.{self.fmt.extension}"
        params = track_params(
            spec.codec, spec.clock_rate, start.width, start.height, start.extradata, spec.channels
        )
        self._file = SegmentFile(path, self._doc_type, spec.codec, params, spec.clock_rate)
        self._seg_frames = 0

    def _write_frame(self, frame: Frame) -> None:
        file = self._file
        if file is None:
            raise MuxError(f"track {self.spec.name}: frame before the first segment start")
        on_disk = file.frames_on_disk
        try:
            file.write(frame.data, frame.pts, frame.keyframe)
        except MuxError:
            self._salvage(file)
            raise
        if file.frames_on_disk != on_disk:  # this frame closed a Cluster holding every frame before it
            self._seg_last_on_disk = self._seg_last
        if self._seg_frames == 0:
            self._seg_first = frame.rtp_timestamp
        self._seg_last = frame.rtp_timestamp
        self._seg_frames += 1

    def _close_segment(self) -> None:
        file = self._file
        if file is None:
            return
        self._file = None
        path = file.path
        if self._seg_frames == 0:
            file.abandon()
            path.unlink(missing_ok=True)
            return
        try:
            sha256 = file.close()
        except MuxError:
            self._salvage(file)
            raise
        self._list(file, self._seg_last, sha256)

    def _salvage(self, file: SegmentFile) -> None:
        """After a failed write: keep the segment's whole Clusters, listed, or remove it if they hold no
        frame."""
        self._file = None
        file.abandon()
        if file.frames_on_disk == 0:
            file.path.unlink(missing_ok=True)
            return
        log.warning(
            "track %s: segment %s kept with the %d frames written before the error",
            self.spec.name,
            file.path.name,
            file.frames_on_disk,
        )
        self._list(file, self._seg_last_on_disk, file.digest())

    def _list(self, file: SegmentFile, last_rtp_timestamp: int, sha256: str) -> None:
        self._next_index += 1
        self.frames_written += file.frames_on_disk
        self.keyframes_written += file.keyframes_on_disk
        self.segments.append(
            SegmentInfo(
                index=int(file.path.stem),
                path=str(file.path.relative_to(self.folder)),
                first_rtp_timestamp=self._seg_first,
                last_rtp_timestamp=last_rtp_timestamp,
                frames=file.frames_on_disk,
                size=file.size,
                sha256=sha256,
            )
        )
