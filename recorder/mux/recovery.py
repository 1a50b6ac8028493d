"""Finalize tracks that a crash left behind: segments on disk, no joined file, a summary still saying
'recording' (or none at all). Whatever the segments hold is joined; the open segment of the crash is
read as far as it goes. The summary is marked 'recovered' and lists every segment with its hash."""

from __future__ import annotations

import logging
from pathlib import Path

import av

from recorder.errors import MuxError
from recorder.models import Codec, MediaKind, SegmentInfo, TrackSummary
from recorder.mux.containers import FORMATS, Container
from recorder.mux.join import join_segments, segment_files
from recorder.mux.track_writer import sha256_file
from recorder.summaries import read_summary, write_summary

log = logging.getLogger(__name__)

SEGMENTS_SUFFIX = ".segments"
_CODECS = {"vp8": Codec.VP8, "vp9": Codec.VP9, "h264": Codec.H264, "opus": Codec.OPUS}
_CONTAINERS = {fmt.extension: fmt.container for fmt in FORMATS.values()}


def unfinished_tracks(folder: Path) -> list[str]:
    """Names of tracks under `folder` whose segments were never finalized."""
    names = []
    for seg_dir in sorted(folder.glob(f"*{SEGMENTS_SUFFIX}")):
        name = seg_dir.name.removesuffix(SEGMENTS_SUFFIX)
        summary = read_summary(folder, name)
        if (summary is None or summary.state == "recording") and segment_files(seg_dir):
            names.append(name)
    return names


def recover_folder(folder: Path) -> list[TrackSummary]:
    """Finalize every unfinished track under `folder` (recursively); returns their summaries."""
    recovered = []
    folders = {p.parent for p in folder.rglob(f"*{SEGMENTS_SUFFIX}") if p.is_dir()}
    for track_folder in sorted(folders):
        for name in unfinished_tracks(track_folder):
            try:
                recovered.append(recover_track(track_folder, name))
            except MuxError as exc:
                log.error("cannot recover track %s in %s: %s", name, track_folder, exc)
    return recovered


def recover_track(folder: Path, name: str) -> TrackSummary:
    files = segment_files(folder / f"{name}{SEGMENTS_SUFFIX}")
    if not files:
        raise MuxError(f"track {name}: no segments to recover")
    container = _CONTAINERS.get(files[0].suffix.lstrip("."), Container.MATROSKA)
    summary = read_summary(folder, name) or _summary_from_segment(name, files[0], container)
    out = folder / f"{name}.{FORMATS[container].extension}"
    result = join_segments(files, out, container)
    known = {s.path for s in summary.segments}
    for read in result.segments:
        rel = str(read.path.relative_to(folder))
        if rel in known or read.packets == 0:
            continue
        summary.segments.append(
            SegmentInfo(
                index=int(read.path.stem),
                path=rel,
                # The RTP timestamps of a segment cut short are not known after a crash; these are
                # the track-timeline positions read back from the file, in clock-rate units.
                first_rtp_timestamp=round((read.first_pts or 0.0) * summary.clock_rate),
                last_rtp_timestamp=round((read.last_pts or 0.0) * summary.clock_rate),
                frames=read.packets,
                size=read.path.stat().st_size,
                sha256=sha256_file(read.path),
            )
        )
    summary.file = out.name
    summary.state = "recovered"
    write_summary(folder, summary)
    log.info("recovered track %s: %d frames from %d segments into %s", name, result.packets, len(files), out)
    return summary


def _summary_from_segment(name: str, path: Path, container: Container) -> TrackSummary:
    """A minimal summary for a track whose summary JSON was never written."""
    try:
        with av.open(str(path)) as source:
            stream = source.streams[0]
            ctx = stream.codec_context
            codec = _CODECS[ctx.name]
            video = isinstance(ctx, av.VideoCodecContext)
            return TrackSummary(
                name=name,
                kind=MediaKind.VIDEO if video else MediaKind.AUDIO,
                codec=codec,
                clock_rate=90000 if video else 48000,
                payload_type=0,
                container=container.value,
                width=ctx.width if isinstance(ctx, av.VideoCodecContext) else None,
                height=ctx.height if isinstance(ctx, av.VideoCodecContext) else None,
            )
    except (av.FFmpegError, OSError, KeyError, IndexError) as exc:
        raise MuxError(f"track {name}: cannot identify its codec from {path}: {exc}") from exc
