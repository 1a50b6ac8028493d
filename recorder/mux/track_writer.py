"""Passthrough muxing of one track into independently playable segment files (PyAV, no transcoding).

A TrackWriter is confined to one mux worker thread. It obeys the pipeline's commands: `SegmentStart`
closes the open segment and opens the next, `Frame` is written as one packet carrying the sender's
bytes unchanged. Segment files live in `<folder>/<track>.segments/NNNNNN.<ext>`; each closed one is
hashed and listed in the track's summary.
"""

from __future__ import annotations

import hashlib
import logging
from fractions import Fraction
from pathlib import Path

import av

from recorder.assembly.pipeline import MuxItem, SegmentStart
from recorder.errors import MuxError
from recorder.models import Frame, SegmentInfo, StreamSpec
from recorder.mux.containers import AV_CODEC_NAMES, ContainerFormat

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
        self.folder = folder
        self.spec = spec
        self.fmt = fmt
        self.segments: list[SegmentInfo] = []
        self.frames_written = 0
        self._dir = segments_dir(folder, spec.name)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._time_base = Fraction(1, spec.clock_rate)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.stream.Stream | None = None
        self._path: Path | None = None
        self._seg_first = 0
        self._seg_last = 0
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
        path = self._dir / f"{self._next_index:06d}.{self.fmt.extension}"
        try:
            container = av.open(str(path), "w", format=self.fmt.container.value, options=self.fmt.options)
            stream = container.add_stream(AV_CODEC_NAMES[self.spec.codec], rate=self.spec.clock_rate)
            ctx = stream.codec_context
            if isinstance(ctx, av.VideoCodecContext):
                ctx.width = start.width or 0
                ctx.height = start.height or 0
            elif isinstance(ctx, av.AudioCodecContext):
                ctx.sample_rate = self.spec.clock_rate
            if start.extradata:
                ctx.extradata = start.extradata
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise MuxError(f"cannot open segment {path}: {exc}") from exc
        self._container, self._stream, self._path = container, stream, path
        self._seg_frames = 0

    def _write_frame(self, frame: Frame) -> None:
        stream = self._stream
        if stream is None or self._container is None:
            raise MuxError(f"track {self.spec.name}: frame before the first segment start")
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = frame.pts
        packet.time_base = self._time_base
        packet.stream = stream
        packet.is_keyframe = frame.keyframe
        try:
            self._container.mux(packet)
        except av.FFmpegError as exc:
            raise MuxError(f"track {self.spec.name}: cannot write frame at pts {frame.pts}: {exc}") from exc
        if self._seg_frames == 0:
            self._seg_first = frame.rtp_timestamp
        self._seg_last = frame.rtp_timestamp
        self._seg_frames += 1
        self.frames_written += 1

    def _close_segment(self) -> None:
        container, path = self._container, self._path
        if container is None or path is None:
            return
        self._container = self._stream = self._path = None
        try:
            container.close()
        except av.FFmpegError as exc:
            raise MuxError(f"cannot close segment {path}: {exc}") from exc
        self._next_index += 1
        if self._seg_frames == 0:
            path.unlink(missing_ok=True)
            self._next_index -= 1
            return
        self.segments.append(
            SegmentInfo(
                index=int(path.stem),
                path=str(path.relative_to(self.folder)),
                first_rtp_timestamp=self._seg_first,
                last_rtp_timestamp=self._seg_last,
                frames=self._seg_frames,
                size=path.stat().st_size,
                sha256=sha256_file(path),
            )
        )
