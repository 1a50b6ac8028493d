"""Mux worker threads: muxing and file I/O never run on the event loop.

Each TrackWriter is pinned to one worker (by a counter), so its batches are written in order. The
event loop hands over batches of frames (one hop per stream per tick, not per packet) and awaits
`close` for the segments. Errors are kept per writer and re-raised to whoever closes it, so one broken
track never takes the others down.
"""

from __future__ import annotations

import asyncio
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
        for t in self._threads:
            t.start()

    def attach(self, writer: TrackWriter) -> None:
        self._slot[id(writer)] = next(self._assign) % len(self._queues)

    def write(self, writer: TrackWriter, items: list[MuxItem]) -> None:
        """Queue a batch for the writer's thread; returns at once."""
        key = id(writer)

        def job() -> None:
            if key in self._errors:
                return
            try:
                writer.write(items)
            except MuxError as exc:
                log.error("track %s: %s", writer.spec.name, exc)
                self._errors[key] = exc

        self._queues[self._slot[key]].put(job)

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

        self._queues[self._slot.pop(key)].put(job)
        return await asyncio.wrap_future(done)

    def shutdown(self) -> None:
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join(timeout=30)

    @staticmethod
    def _run(jobs: queue.SimpleQueue[Job | None]) -> None:
        while (job := jobs.get()) is not None:
            job()
