"""Join a track's segments into one file (no transcoding), tolerating a segment cut short by a crash:
everything readable is kept, the rest is counted.

Into Matroska or WebM, segments that CallVault's own muxer wrote whole are joined at the byte level
(concat.py): their Clusters are copied unchanged between a new head and Cues, and the file is hashed as it
is written. Anything else (MP4, a segment cut short or not CallVault's) is remuxed packet by packet with
PyAV, which keeps what is readable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import av
from av.container import OutputContainer

from recorder.errors import MuxError
from recorder.mux.concat import Concat, NotJoinableError, SegmentPlan
from recorder.mux.containers import FORMATS, Container
from recorder.mux.write_errors import write_error

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SegmentRead:
    path: Path
    packets: int = 0
    first_pts: float | None = None  # seconds
    last_pts: float | None = None
    truncated: bool = False
    error: str | None = None


@dataclass(slots=True)
class JoinResult:
    path: Path
    packets: int = 0
    keyframes: int = 0
    skipped: int = 0
    duration: float | None = None  # seconds, as the joined file tells it (ffprobe's format duration)
    segments: list[SegmentRead] = field(default_factory=list)
    sha256: str | None = None  # of the joined file, when it was hashed as it was written


class NothingToJoinError(MuxError):
    """Not one of the segments holds a readable frame."""


def segment_files(seg_dir: Path) -> list[Path]:
    """The segment files of a track in order (names are zero-padded indices)."""
    return (
        sorted(p for p in seg_dir.iterdir() if p.is_file() and p.stem.isdigit()) if seg_dir.is_dir() else []
    )


def join_segments(segments: list[Path], out_path: Path, container: Container) -> JoinResult:
    """Join `segments` in order into `out_path` (written beside it as .part, then renamed).

    A segment that cannot be read (all or past some point) is what a crash leaves: what it holds is kept
    and the rest counted. A write that fails (a full disk) fails the join with a MuxError and leaves
    nothing behind: the .part file is removed and `out_path` is untouched.
    """
    if not segments:
        raise MuxError(f"no segments to join into {out_path}")
    if container is not Container.MP4:
        joined = _concat(segments, out_path, container)
        if joined is not None:
            return joined
    return remux_segments(segments, out_path, container)


def remux_segments(segments: list[Path], out_path: Path, container: Container) -> JoinResult:
    """join_segments by PyAV alone, a packet at a time: for any container, and any segment it can read."""
    if not segments:
        raise MuxError(f"no segments to join into {out_path}")
    fmt = FORMATS[container]
    part = out_path.with_name(out_path.name + ".part")
    result = JoinResult(out_path)
    try:
        output = av.open(str(part), "w", format=fmt.container.value, options=fmt.options)
    except (av.FFmpegError, OSError) as exc:
        part.unlink(missing_ok=True)
        raise write_error(str(part), exc) from exc
    closed = False
    try:
        _copy(segments, output, result, part)
        if result.packets == 0:
            raise NothingToJoinError(
                f"none of the {len(segments)} segments for {out_path.name} holds a readable frame"
            )
        try:
            output.close()
        except (av.FFmpegError, OSError) as exc:
            raise write_error(str(part), exc) from exc
        closed = True
        os.replace(part, out_path)
    finally:
        if not closed:
            with contextlib.suppress(av.FFmpegError, OSError):
                output.close()
            part.unlink(missing_ok=True)
    result.duration = _duration(out_path)
    return result


def _concat(segments: list[Path], out_path: Path, container: Container) -> JoinResult | None:
    """The byte-level join (concat.py) when every segment is CallVault's own and whole, else None."""
    concat = Concat()
    plans: list[SegmentPlan] = []
    try:
        for seg in segments:
            plans.append(concat.add(seg.read_bytes()))
        head, cues = concat.finish("webm" if container is Container.WEBM else "matroska")
    except (NotJoinableError, OSError) as exc:
        log.info("segments of %s are remuxed with FFmpeg: %s", out_path.name, exc)
        return None
    part = out_path.with_name(out_path.name + ".part")
    digest = hashlib.sha256()
    try:
        with part.open("wb") as out:
            _write(out, head, digest)
            for seg, plan in zip(segments, plans, strict=True):
                buf = memoryview(_reread(seg, plan.size))
                for piece in plan.pieces:
                    _write(out, piece.data or buf[piece.start : piece.end], digest)
            _write(out, cues, digest)
        os.replace(part, out_path)
    except NotJoinableError as exc:
        part.unlink(missing_ok=True)
        log.warning("segments of %s are remuxed with FFmpeg: %s", out_path.name, exc)
        return None
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise write_error(str(part), exc) from exc
    result = JoinResult(
        out_path,
        packets=concat.packets,
        keyframes=concat.keyframes,
        skipped=concat.skipped,
        duration=concat.duration_ms() / 1000,
        sha256=digest.hexdigest(),
    )
    for seg, plan in zip(segments, plans, strict=True):
        read = SegmentRead(seg, plan.packets)
        if plan.first_ms is not None and plan.last_ms is not None:
            read.first_pts, read.last_pts = plan.first_ms / 1000, plan.last_ms / 1000
        result.segments.append(read)
    return result


def _reread(seg: Path, size: int) -> bytes:
    """The segment again, as it was planned (a failure here is not the joined file's: remux instead)."""
    try:
        data = seg.read_bytes()
    except OSError as exc:
        raise NotJoinableError(f"segment {seg} became unreadable: {exc}") from exc
    if len(data) != size:
        raise NotJoinableError(f"segment {seg} changed while it was joined")
    return data


def _write(out: BinaryIO, data: bytes | memoryview, digest: hashlib._Hash) -> None:
    out.write(data)
    digest.update(data)


def _copy(segments: list[Path], output: OutputContainer, result: JoinResult, part: Path) -> None:
    out_stream = None
    last_dts: int | None = None
    for seg in segments:
        read = SegmentRead(seg)
        result.segments.append(read)
        try:
            source = av.open(str(seg))
        except (av.FFmpegError, OSError) as exc:
            read.error = f"unreadable: {exc}"
            log.warning("segment %s is unreadable and is left out: %s", seg, exc)
            continue
        with source:
            if not source.streams:
                read.error = "no streams"
                continue
            in_stream = source.streams[0]
            if out_stream is None:
                out_stream = output.add_stream_from_template(in_stream)
                # The file's one track is its default track (FlagDefault 1), as in the segments and as
                # mkvmerge writes; PyAV leaves the disposition empty, which libavformat writes as 0.
                out_stream.disposition = av.stream.Disposition.default
            packets = source.demux(in_stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # reading, never writing: the segment is cut short
                    read.truncated = True
                    read.error = str(exc)
                    log.warning("segment %s is cut short after %d packets: %s", seg, read.packets, exc)
                    break
                if packet.size == 0 or packet.dts is None:
                    continue
                if last_dts is not None and packet.dts <= last_dts:
                    result.skipped += 1
                    continue
                t = float(packet.pts * packet.time_base) if packet.pts is not None else None
                if read.first_pts is None:
                    read.first_pts = t
                read.last_pts = t
                last_dts = packet.dts
                keyframe = packet.is_keyframe
                packet.stream = out_stream
                try:
                    output.mux(packet)
                except (av.FFmpegError, OSError) as exc:
                    raise write_error(str(part), exc) from exc
                read.packets += 1
                result.packets += 1
                result.keyframes += keyframe


def _duration(path: Path) -> float | None:
    """The joined file's duration as players (and ffprobe) read it, in seconds."""
    try:
        with av.open(str(path)) as joined:
            return joined.duration / av.time_base if joined.duration is not None else None
    except (av.FFmpegError, OSError) as exc:
        log.warning("cannot read the duration of %s: %s", path, exc)
        return None
