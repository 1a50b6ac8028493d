"""Mux workers take the batches of every stream of one event-loop iteration together: each writer
still gets its batches in order, `close` comes after everything written before it, and one writer's
error stays with that writer."""

from __future__ import annotations

import asyncio
import threading
from typing import cast

import pytest

from recorder.errors import MuxError
from recorder.models import SegmentInfo
from recorder.mux.track_writer import TrackWriter
from recorder.mux.workers import MuxWorkers


class RecordingWriter:
    """Stands in for a TrackWriter: keeps what it was given and on which thread."""

    def __init__(self, name: str, fail_on: object = None) -> None:
        self.spec = type("Spec", (), {"name": name})()
        self.items: list[object] = []
        self.threads: set[str] = set()
        self.closed_after: list[object] | None = None
        self.segments: list[SegmentInfo] = []
        self.fail_on = fail_on

    def write(self, items: list[object]) -> None:
        self.threads.add(threading.current_thread().name)
        for item in items:
            if item == self.fail_on:
                raise MuxError(f"cannot write {item}")
            self.items.append(item)

    def close(self) -> list[SegmentInfo]:
        self.closed_after = list(self.items)
        return self.segments


async def test_batches_of_one_iteration_leave_together_in_order() -> None:
    workers = MuxWorkers(2)
    writers = [RecordingWriter(f"t{i}") for i in range(6)]
    try:
        for w in writers:
            workers.attach(cast(TrackWriter, w))
        for tick in range(20):
            for i, w in enumerate(writers):
                workers.write(cast(TrackWriter, w), [(i, tick, 0), (i, tick, 1)])
            if tick % 3 == 0:
                await asyncio.sleep(0)  # the iteration ends: its batches go to the threads
        for w in writers:
            assert await workers.close(cast(TrackWriter, w)) == []
    finally:
        workers.shutdown()
    for i, w in enumerate(writers):
        expected = [(i, tick, k) for tick in range(20) for k in (0, 1)]
        assert w.items == expected
        assert w.closed_after == expected  # close came after every batch written before it
        assert len(w.threads) == 1 and next(iter(w.threads)).startswith("mux-")


async def test_an_error_stays_with_its_writer() -> None:
    workers = MuxWorkers(1)
    broken, fine = RecordingWriter("broken", fail_on="bad"), RecordingWriter("fine")
    try:
        for w in (broken, fine):
            workers.attach(cast(TrackWriter, w))
        workers.write(cast(TrackWriter, broken), ["a", "bad", "c"])
        workers.write(cast(TrackWriter, fine), ["x"])
        workers.write(cast(TrackWriter, broken), ["d"])  # nothing more for a broken writer
        workers.write(cast(TrackWriter, fine), ["y"])
        with pytest.raises(MuxError, match="cannot write bad"):
            await workers.close(cast(TrackWriter, broken))
        assert await workers.close(cast(TrackWriter, fine)) == []
    finally:
        workers.shutdown()
    assert broken.items == ["a"]
    assert fine.items == ["x", "y"]


def test_without_a_running_loop_a_batch_leaves_at_once() -> None:
    workers = MuxWorkers(1)
    w = RecordingWriter("t")
    workers.attach(cast(TrackWriter, w))
    workers.write(cast(TrackWriter, w), ["a"])
    workers.shutdown()  # joins the thread after what was queued
    assert w.items == ["a"]
