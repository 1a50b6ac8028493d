"""Finalize tracks that a crash left behind: segments on disk, no joined file, a summary still saying
'recording' (or none at all). Whatever the segments hold is joined; the open segment of the crash is
read as far as it goes.

The summary is then rewritten from what was recovered, state 'recovered': frames, keyframes and duration
as the joined file holds them, every segment with its frames, size and SHA-256, and the first and last
timestamps. The live summary was a checkpoint, seconds older than the crash, so what only the live
pipeline knew (packet and loss counters, gaps, pauses, RTCP reports) is kept as it was and
`counters_incomplete` says it may miss the last seconds. The RTP timestamps of segments the live summary
did not list, and the wall-clock time of the last frame, are not in the files: they are derived from the
files' millisecond timestamps, anchored on the last segment (or frame) the live summary knew, and named
in `estimated`. Segments whose frames are all unreadable fail the track (state 'failed', `error`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from recorder.capture.recovery import recover_captures
from recorder.errors import MuxError
from recorder.models import Codec, MediaKind, SegmentInfo, TrackSummary
from recorder.mux.containers import FORMATS, Container
from recorder.mux.join import JoinResult, NothingToJoinError, join_segments, segment_files
from recorder.mux.track_writer import sha256_file
from recorder.mux.write_errors import describe
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
    """Finalize every unfinished track under `folder` (recursively); returns their summaries. Packet
    captures are cut back to their last whole block first (recorder/capture/recovery.py)."""
    recover_captures(folder)
    recovered = []
    folders = {p.parent for p in folder.rglob(f"*{SEGMENTS_SUFFIX}") if p.is_dir()}
    for track_folder in sorted(folders):
        for name in unfinished_tracks(track_folder):
            try:
                recovered.append(recover_track(track_folder, name))
            except (MuxError, OSError) as exc:  # left as it was, for the next try (a disk full now)
                log.error("cannot recover track %s in %s: %s", name, track_folder, describe(exc))
    return recovered


def recover_track(folder: Path, name: str) -> TrackSummary:
    """Join the track's segments and write its summary as recovered (or failed: no readable frame)."""
    files = segment_files(folder / f"{name}{SEGMENTS_SUFFIX}")
    if not files:
        raise MuxError(f"track {name}: no segments to recover")
    container = _CONTAINERS.get(files[0].suffix.lstrip("."), Container.MATROSKA)
    live = read_summary(folder, name)
    summary = live.model_copy(deep=True) if live else _summary_from_segment(name, files[0], container)
    summary.counters_incomplete = True
    out = folder / f"{name}.{FORMATS[container].extension}"
    try:
        result = join_segments(files, out, container)
    except NothingToJoinError as exc:
        summary.state = "failed"
        summary.error = f"recovery: {exc}"
        summary.frames_unwritten += summary.frames
        summary.frames = summary.keyframes = 0
        write_summary(folder, summary)
        log.error("track %s in %s: %s", name, folder, exc)
        return summary
    _recount(folder, summary, result, live)
    summary.file = out.name
    summary.state = "recovered"
    write_summary(folder, summary)
    log.info("recovered track %s: %d frames from %d segments into %s", name, result.packets, len(files), out)
    return summary


def _recount(folder: Path, summary: TrackSummary, result: JoinResult, live: TrackSummary | None) -> None:
    """Rewrite what the files tell: frames, duration, segments, first and last timestamps."""
    clock = summary.clock_rate
    listed = {s.path: s for s in summary.segments}
    reads = [r for r in result.segments if r.packets > 0 and r.first_pts is not None]
    estimated: set[str] = set()
    # RTP timestamp minus track-timeline position (clock units): exact where the live summary listed a
    # segment, from the track's first frame before that, from the timeline alone without a summary. A
    # sender restart starts a new segment and a new offset: across one that the live summary did not
    # see, the estimates stay in the old sender's timestamps.
    offset = 0
    if summary.first_rtp_timestamp is not None and reads:
        offset = summary.first_rtp_timestamp - _ticks(reads[0].first_pts, clock)
    segments = list(summary.segments)
    last_rtp: int | None = None
    last_exact = False
    for read in reads:
        rel = str(read.path.relative_to(folder))
        known = listed.get(rel)
        if known is not None:
            offset = known.last_rtp_timestamp - _ticks(read.last_pts, clock)
            last_rtp, last_exact = known.last_rtp_timestamp, True
            continue
        info = SegmentInfo(
            index=int(read.path.stem),
            path=rel,
            first_rtp_timestamp=offset + _ticks(read.first_pts, clock),
            last_rtp_timestamp=offset + _ticks(read.last_pts, clock),
            frames=read.packets,
            size=read.path.stat().st_size,
            sha256=sha256_file(read.path),
        )
        segments.append(info)
        last_rtp, last_exact = info.last_rtp_timestamp, False
    segments.sort(key=lambda s: s.index)
    for i, seg in enumerate(segments):
        if seg.path not in listed:
            estimated |= {f"segments[{i}].first_rtp_timestamp", f"segments[{i}].last_rtp_timestamp"}
    summary.segments = segments

    if summary.first_rtp_timestamp is None and reads:
        summary.first_rtp_timestamp = offset + _ticks(reads[0].first_pts, clock)
        estimated.add("first_rtp_timestamp")
    if summary.first_wallclock is None and reads:
        # Nothing but the file's modification time: when its last Cluster was written.
        first = reads[0]
        written = first.path.stat().st_mtime
        summary.first_wallclock = written - ((first.last_pts or 0.0) - (first.first_pts or 0.0))
        estimated.add("first_wallclock")
    if last_rtp is not None and last_rtp != summary.last_rtp_timestamp:
        anchor_rtp, anchor_wall = summary.last_rtp_timestamp, summary.last_wallclock
        summary.last_rtp_timestamp = last_rtp
        if not last_exact:
            estimated.add("last_rtp_timestamp")
        if anchor_rtp is not None and anchor_wall is not None:
            summary.last_wallclock = anchor_wall + (last_rtp - anchor_rtp) / clock
        elif summary.first_wallclock is not None and reads:
            span = (reads[-1].last_pts or 0.0) - (reads[0].first_pts or 0.0)
            summary.last_wallclock = summary.first_wallclock + span
        estimated.add("last_wallclock")

    summary.frames_unwritten = max(0, (live.frames if live else 0) - result.packets)
    summary.frames = result.packets
    summary.keyframes = result.keyframes
    summary.duration = result.duration
    summary.estimated = sorted(estimated, key=_field_order)


def _ticks(seconds: float | None, clock: int) -> int:
    return round((seconds or 0.0) * clock)


def _field_order(name: str) -> tuple[int, int, str]:
    """Track fields first, then segments by position."""
    if name.startswith("segments["):
        return (1, int(name[len("segments[") : name.index("]")]), name)
    return (0, 0, name)


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
