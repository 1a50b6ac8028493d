"""A track's summary file: checkpoints while it records, a final summary that nothing replaces."""

from __future__ import annotations

import os
from pathlib import Path

from recorder import summaries
from recorder.models import Codec, MediaKind, TrackSummary
from recorder.summaries import read_summary, summary_path, write_summary


def summary(state: str, frames: int, name: str = "audio-0") -> TrackSummary:
    return TrackSummary(
        name=name,
        state=state,
        kind=MediaKind.AUDIO,
        codec=Codec.OPUS,
        clock_rate=48000,
        payload_type=111,
        container="webm",
        frames=frames,
    )


def test_checkpoints_replace_each_other(tmp_path: Path) -> None:
    for frames in range(1, 6):
        assert write_summary(tmp_path, summary("recording", frames))
        assert read_summary(tmp_path, "audio-0") == summary("recording", frames)


def test_a_final_summary_written_by_another_process_is_never_replaced_by_a_checkpoint(tmp_path: Path) -> None:
    """This process remembers its own last checkpoint's inode/mtime/size and reads the file only when
    that changed: a final summary put in place by someone else (a recovery run, another writer) is seen."""
    assert write_summary(tmp_path, summary("recording", 10))
    final = summary("recovered", 12)
    tmp = tmp_path / "other-writer.tmp"
    tmp.write_text(final.model_dump_json())
    os.replace(tmp, summary_path(tmp_path, "audio-0"))
    assert not write_summary(tmp_path, summary("recording", 11))
    assert read_summary(tmp_path, "audio-0") == final


def test_a_finished_track_leaves_nothing_in_memory(tmp_path: Path) -> None:
    """A service records tracks for months: per-track state lives only while the track does."""
    before = len(summaries._tracks)
    for i in range(50):
        write_summary(tmp_path, summary("recording", 1, name=f"audio-{i}"))
    assert len(summaries._tracks) == before + 50
    for i in range(50):
        write_summary(tmp_path, summary("complete", 2, name=f"audio-{i}"))
    assert len(summaries._tracks) == before
    # A checkpoint arriving after the end still cannot replace the final summary.
    assert not write_summary(tmp_path, summary("recording", 3, name="audio-7"))
    assert read_summary(tmp_path, "audio-7") == summary("complete", 2, name="audio-7")


def test_checkpoints_exchange_two_files_and_the_final_summary_leaves_none(tmp_path: Path) -> None:
    """A live track's checkpoints reuse two files (no file created or deleted per checkpoint, which costs
    a recorder of hundreds of tracks dearly on ext4); the final summary leaves no hidden file behind."""
    inodes = set()
    for frames in range(6):
        assert write_summary(tmp_path, summary("recording", frames))
        assert read_summary(tmp_path, "audio-0") == summary("recording", frames)
        inodes.add(summary_path(tmp_path, "audio-0").stat().st_ino)
    assert len(inodes) == 2
    assert write_summary(tmp_path, summary("complete", 7))
    assert read_summary(tmp_path, "audio-0") == summary("complete", 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio-0.json"]
