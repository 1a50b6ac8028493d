"""Writers on a disk that fills: a real tmpfs of 2 MiB (tests/helpers/small_disk.py) with a filler file
leaving a measured amount free, so every write fails in the kernel with ENOSPC, nothing injected.

What must hold: the error says the disk is full; what was written before it is kept and described
truly (the open segment cut back to its whole Clusters, listed with its frames, size and hash); nothing
half-written is left behind (no partial Cluster, no .part or temporary file, no empty file); and the
final summary of a track can still be written on the full disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from mkv_reader import read_layout
from segment_helpers import CODECS
from small_disk import FILLER, fill, small_disk

from recorder.assembly.frame import Frame
from recorder.assembly.pipeline import MuxItem, SegmentStart
from recorder.errors import MuxError
from recorder.models import MediaKind, SegmentInfo, StreamSpec, TrackSummary
from recorder.mux.containers import Container, segment_format
from recorder.mux.join import join_segments
from recorder.mux.track_writer import TrackWriter
from recorder.summaries import read_summary, write_summary

PAGE = 4096
FPS_TICKS = 3000  # 30 frames/s at 90 kHz


def vp8_items(ref: Any, starts: tuple[int, ...]) -> list[MuxItem]:
    """The reference VP8 frames (keyframe every 30) with a SegmentStart before frame i for i in starts."""
    items: list[MuxItem] = []
    for i, (data, key) in enumerate(zip(ref.frames, ref.keyframes, strict=True)):
        if i in starts:
            items.append(SegmentStart(320, 240, b""))
        items.append(
            Frame(data, key, rtp_timestamp=5000 + i * FPS_TICKS, arrival_time=0.0, pts=i * FPS_TICKS)
        )
    return items


def writer_in(folder: Path) -> TrackWriter:
    spec = StreamSpec(name="video-0", codec=CODECS["vp8"], payload_type=96, clock_rate=90000, port=0)
    return TrackWriter(folder, spec, segment_format(spec.codec))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != FILLER)


def test_a_segment_open_when_the_disk_fills_keeps_its_whole_clusters(
    references: dict, tmp_path: Path
) -> None:
    ref = references["vp8"]
    items = vp8_items(ref, starts=(0, 60))  # segment 0: clusters of frames 0-29 and 30-59
    dry = writer_in(tmp_path / "dry")
    dry.write(items)
    (seg0, _) = dry.close()
    full = (tmp_path / "dry" / seg0.path).read_bytes()
    clusters = read_layout(full).clusters
    first_end = clusters[0].end
    assert clusters[1].end - first_end > 4 * PAGE  # the second Cluster cannot fit what is left

    with small_disk(tmp_path) as disk:
        # Room for the header and the first Cluster (in whole pages), not for the second.
        fill(disk, leave=(first_end // PAGE + 2) * PAGE)
        writer = writer_in(disk)
        with pytest.raises(MuxError, match=r"disk full \(ENOSPC\)"):
            for i in range(0, len(items), 10):
                writer.write(items[i : i + 10])
        assert writer.close() == writer.segments  # no new error, nothing more written

        (kept,) = writer.segments
        path = disk / kept.path
        data = path.read_bytes()
        assert data == full[:first_end]  # the header and the first Cluster, nothing of the second
        assert kept == SegmentInfo(
            index=0,
            path=seg0.path,
            first_rtp_timestamp=5000,
            last_rtp_timestamp=5000 + 29 * FPS_TICKS,
            frames=30,
            size=first_end,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        assert writer.frames_written == 30 and writer.keyframes_written == sum(ref.keyframes[:30])
        assert files_under(disk) == [path]


def test_a_disk_full_before_a_segment_s_first_cluster_leaves_no_file(
    references: dict, tmp_path: Path
) -> None:
    ref = references["vp8"]
    with small_disk(tmp_path) as disk:
        writer = writer_in(disk)
        fill(disk, leave=0)
        with pytest.raises(MuxError, match=r"disk full \(ENOSPC\)"):
            writer.write(vp8_items(ref, starts=(0,)))
        assert writer.close() == [] and files_under(disk) == []


@pytest.mark.parametrize("leave", [0, 12 * PAGE])
def test_a_join_onto_a_full_disk_fails_and_leaves_nothing(
    references: dict, tmp_path: Path, leave: int
) -> None:
    ref = references["vp8"]
    source = writer_in(tmp_path / "rec")
    source.write(vp8_items(ref, starts=(0, 30, 60)))
    segments = [tmp_path / "rec" / s.path for s in source.close()]
    with small_disk(tmp_path) as disk:
        fill(disk, leave=leave)
        with pytest.raises(MuxError, match=r"disk full \(ENOSPC\)"):
            join_segments(segments, disk / "video-0.webm", Container.WEBM)
        assert files_under(disk) == []


def summary(state: str, segments: int) -> TrackSummary:
    return TrackSummary(
        name="video-0",
        state=state,
        kind=MediaKind.VIDEO,
        codec=CODECS["vp8"],
        clock_rate=90000,
        payload_type=96,
        container="webm",
        frames=segments * 120,
        error="disk full (ENOSPC): cannot write segment" if state == "failed" else None,
        segments=[
            SegmentInfo(
                index=i,
                path=f"video-0.segments/{i:06d}.webm",
                first_rtp_timestamp=i * 360000,
                last_rtp_timestamp=i * 360000 + 357000,
                frames=120,
                size=600000,
                sha256="ab" * 32,
            )
            for i in range(segments)
        ],
    )


def test_the_final_summary_is_written_on_a_full_disk(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        write_summary(disk, summary("recording", 3))
        fill(disk, leave=0)
        # A checkpoint on the full disk is skipped, not raised: the previous one stays, nothing is left.
        assert not write_summary(disk, summary("recording", 40))
        assert read_summary(disk, "video-0") == summary("recording", 3)
        # The final summary goes into the space the checkpoints set aside.
        final = summary("failed", 40)
        assert write_summary(disk, final)
        assert read_summary(disk, "video-0") == final
        assert files_under(disk) == [disk / "video-0.json"]
        # A checkpoint that comes late never replaces it.
        assert not write_summary(disk, summary("recording", 41))
        assert read_summary(disk, "video-0") == final


def test_a_final_summary_that_cannot_be_written_raises_and_leaves_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        fill(disk, leave=0)
        with pytest.raises(OSError, match="No space left"):
            write_summary(disk, summary("complete", 2))
        assert files_under(disk) == []
