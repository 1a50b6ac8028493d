"""Mux worker threads: muxing and file I/O never run on the event loop.

Each TrackWriter is pinned to one worker (by a counter), so its batches are written in order. The
event loop hands over batches of frames and awaits `close` for the segments. A worker is woken once per
event-loop iteration, not once per stream: `write` collects the batches of every stream of the
iteration (the session's timer step over all its tracks) and hands them over together when the
iteration ends, so a few hundred streams cost a few thread wakeups per tick instead of hundreds.

Errors are kept per writer and re-raised to whoever closes it, so one broken
track never takes the others down.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from recorder.assembly.pipeline import MuxItem
from recorder.errors import MuxError
from recorder.models import SegmentInfo
from recorder.mux.track_writer import TrackWriter

log = logging.getLogger(__name__)

Job = Callable[[], None]


class MuxWorkers:
    def __init__(self, threads: int = 2) -> None:
        if threads < 1:
            raise ValueError("need at least one mux worker thread")
        self._queues: list[queue.SimpleQueue[Job | None]] = [queue.SimpleQueue() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"mux-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        self._assign = itertools.count()
        self._slot: dict[int, int] = {}
        self._errors: dict[int, MuxError] = {}
        self._pending: list[list[tuple[TrackWriter, list[MuxItem]]]] = [[] for _ in self._queues]
        """Per worker: the batches `write` collected and not yet handed over (event-loop thread only)."""
        for t in self._threads:
            t.start()

    def attach(self, writer: TrackWriter) -> None:
        self._slot[id(writer)] = next(self._assign) % len(self._queues)

    def write(self, writer: TrackWriter, items: list[MuxItem]) -> None:
        """Queue a batch for the writer's thread; returns at once. On an event loop, the batch leaves
        with every other batch of this loop iteration (see the module's docstring)."""
        slot = self._slot[id(writer)]
        pending = self._pending[slot]
        pending.append((writer, items))
        if len(pending) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._hand_over(slot)
                return
            loop.call_soon(self._hand_over, slot)

    def _hand_over(self, slot: int) -> None:
        batches = self._pending[slot]
        if batches:
            self._pending[slot] = []
            self._queues[slot].put(functools.partial(self._write, batches))

    def _write(self, batches: list[tuple[TrackWriter, list[MuxItem]]]) -> None:
        errors = self._errors
        for writer, items in batches:
            key = id(writer)
            if key in errors:
                continue
            try:
                writer.write(items)
            except MuxError as exc:
                log.error("track %s: %s", writer.spec.name, exc)
                errors[key] = exc

    async def close(self, writer: TrackWriter) -> list[SegmentInfo]:
        """Close the writer after everything queued for it; raises the first error it met."""
        key = id(writer)
        done: Future[list[SegmentInfo]] = Future()

        def job() -> None:
            try:
                segments = writer.close()
            except MuxError as exc:
                self._errors.setdefault(key, exc)
                segments = writer.segments
            error = self._errors.pop(key, None)
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(segments)

        slot = self._slot.pop(key)
        self._hand_over(slot)  # what was written before comes first
        self._queues[slot].put(job)
        return await asyncio.wrap_future(done)

    def shutdown(self) -> None:
        for slot, q in enumerate(self._queues):
            self._hand_over(slot)
            q.put(None)
        for t in self._threads:
            t.join(timeout=30)

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Job | None]) -> None:
        while (job := jobs.get()) is not None:
            job()
