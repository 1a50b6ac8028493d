"""Join a track's segments into one file by remuxing (no transcoding), tolerating a segment cut short
by a crash: everything readable is kept, the rest is counted."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import av

from recorder.errors import MuxError
from recorder.mux.containers import FORMATS, Container

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
    skipped: int = 0
    segments: list[SegmentRead] = field(default_factory=list)


def segment_files(seg_dir: Path) -> list[Path]:
    """The segment files of a track in order (names are zero-padded indices)."""
    return (
        sorted(p for p in seg_dir.iterdir() if p.is_file() and p.stem.isdigit()) if seg_dir.is_dir() else []
    )


def join_segments(segments: list[Path], out_path: Path, container: Container) -> JoinResult:
    """Remux `segments` in order into `out_path` (written beside it as .part, then renamed)."""
    if not segments:
        raise MuxError(f"no segments to join into {out_path}")
    fmt = FORMATS[container]
    part = out_path.with_name(out_path.name + ".part")
    result = JoinResult(out_path)
    output = av.open(str(part), "w", format=fmt.container.value, options=fmt.options)
    out_stream = None
    last_dts: int | None = None
    try:
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
                try:
                    for packet in source.demux(in_stream):
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
                        packet.stream = out_stream
                        output.mux(packet)
                        read.packets += 1
                        result.packets += 1
                except av.FFmpegError as exc:
                    read.truncated = True
                    read.error = str(exc)
                    log.warning("segment %s is cut short after %d packets: %s", seg, read.packets, exc)
    finally:
        output.close()
    if result.packets == 0:
        part.unlink(missing_ok=True)
        raise MuxError(f"none of the {len(segments)} segments for {out_path.name} holds a readable frame")
    os.replace(part, out_path)
    return result
