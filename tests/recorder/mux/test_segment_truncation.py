"""A segment cut short, as a SIGKILL leaves the open one: joining and recovery keep every frame of its
complete clusters, never more than the blocks that are whole, always a bit-exact prefix, and never
crash. Cuts are at seeded random offsets plus every cluster boundary."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from media import read_packets
from mkv_reader import read_layout
from segment_helpers import CODECS, stored, timeline, write_segment

from recorder.assembly.pipeline import SegmentStart
from recorder.errors import MuxError
from recorder.mux.containers import segment_format
from recorder.mux.join import join_segments
from recorder.mux.recovery import recover_folder
from recorder.summaries import read_summary

RANDOM_CUTS = 24


def cuts_for(data: bytes, seed: int) -> list[int]:
    """Seeded random offsets plus each cluster's start and end, and one byte either side."""
    layout = read_layout(data)
    edges = {c.start for c in layout.clusters} | {c.end for c in layout.clusters}
    near = {e + d for e in edges for d in (-1, 0, 1) if 0 <= e + d < len(data)}
    rng = random.Random(seed)
    return sorted(near | {rng.randrange(len(data)) for _ in range(RANDOM_CUTS)} | {0, 1, 40})


def expected_range(data: bytes, cut: int) -> tuple[int, int]:
    """(frames of the clusters wholly before the cut, frames whose blocks end before it)."""
    layout = read_layout(data)
    whole_clusters = sum(len(c.blocks) for c in layout.clusters if c.end <= cut)
    whole_blocks = sum(1 for b in layout.blocks if b.end <= cut)
    return whole_clusters, whole_blocks


@pytest.mark.parametrize("codec", list(CODECS))
def test_join_keeps_a_prefix_of_a_cut_segment(codec: str, references: dict, tmp_path: Path) -> None:
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    video = codec != "opus"
    half = len(ref.frames) // 2
    pts = timeline(len(ref.frames), clock)
    start = SegmentStart(320 if video else None, 240 if video else None, ref.extradata)
    # Two segments of the same track: the first closed, the second the one open at the "crash". The
    # second starts at a keyframe, as the pipeline starts segments.
    split = next(i for i in range(half, len(ref.frames)) if ref.keyframes[i])
    first = write_segment(
        tmp_path / "a", codec, ref.frames[:split], ref.keyframes[:split], pts[:split], start
    )
    second = write_segment(
        tmp_path / "b", codec, ref.frames[split:], ref.keyframes[split:], pts[split:], start
    )
    closed = tmp_path / "a" / first.path
    full = (tmp_path / "b" / second.path).read_bytes()
    want = [stored(codec, f) for f in ref.frames]
    container = segment_format(CODECS[codec]).container
    ext = closed.suffix

    for cut in cuts_for(full, seed=int.from_bytes(codec.encode(), "big")):
        low, high = expected_range(full, cut)
        cut_path = tmp_path / f"cut{ext}"
        cut_path.write_bytes(full[:cut])
        out = tmp_path / f"joined{ext}"
        result = join_segments([closed, cut_path], out, container)
        got = read_packets(out).data
        assert got == want[: len(got)], f"cut at {cut}: not a prefix"
        assert split + low <= len(got) <= split + high, (cut, len(got), split + low, split + high)
        assert result.packets == len(got)

        # The cut segment alone: a prefix too, or a clear MuxError when it holds no whole frame.
        alone = tmp_path / f"alone{ext}"
        alone.unlink(missing_ok=True)
        try:
            join_segments([cut_path], alone, container)
        except MuxError:
            assert low == 0, f"cut at {cut}: {low} whole clusters were lost"
            assert not alone.exists()
            continue
        got = read_packets(alone).data
        assert got == want[split : split + len(got)] and low <= len(got) <= high


@pytest.mark.parametrize("codec", ["vp8", "h264", "opus"])
def test_recovery_finalizes_a_track_whose_open_segment_was_cut(
    codec: str, references: dict, tmp_path: Path
) -> None:
    """`callvault finalize` after a crash: no summary was written, segments on disk, the last cut."""
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    video = codec != "opus"
    pts = timeline(len(ref.frames), clock)
    start = SegmentStart(320 if video else None, 240 if video else None, ref.extradata)
    split = next(i for i in range(len(ref.frames) // 2, len(ref.frames)) if ref.keyframes[i])
    want = [stored(codec, f) for f in ref.frames]
    rng = random.Random(8794)
    work = tmp_path / "work"
    first = write_segment(work, codec, ref.frames[:split], ref.keyframes[:split], pts[:split], start)
    seg_dir = (work / first.path).parent
    second = write_segment(
        tmp_path / "second", codec, ref.frames[split:], ref.keyframes[split:], pts[split:], start
    )
    full = (tmp_path / "second" / second.path).read_bytes()
    for n, cut in enumerate(sorted(rng.randrange(len(full)) for _ in range(6))):
        folder = tmp_path / f"rec{n}"
        shutil.copytree(work, folder)
        (folder / seg_dir.name / f"000001{Path(first.path).suffix}").write_bytes(full[:cut])
        (summary,) = recover_folder(folder)
        assert summary.state == "recovered" and summary.file is not None
        assert read_summary(folder, summary.name) == summary
        got = read_packets(folder / summary.file).data
        low, high = expected_range(full, cut)
        assert got == want[: len(got)] and split + low <= len(got) <= split + high
        # Every segment that held a frame is listed, with the hash of its bytes on disk.
        assert [s.index for s in summary.segments] == ([0, 1] if len(got) > split else [0])
