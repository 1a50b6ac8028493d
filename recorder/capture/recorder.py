"""The captures of one recording session: a `PacketCapture` per captured track on the event loop, its
`CaptureFile` in one writer thread (file I/O never runs on the event loop; one hop per track per tick).

The session calls `add` when a track starts, `tick` on its timer (returns the segments closed since,
for the session to announce like media segments), `pause`/`resume`, `finish` when the track ends and
`close` when the session stops.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from recorder.capture.replay import settings_comment
from recorder.capture.writer import CaptureFile, Item, PacketCapture
from recorder.config import RecorderSettings
from recorder.models import SegmentInfo, StreamSpec

log = logging.getLogger(__name__)

Address = tuple[str, int]
Job = Callable[[], None]


FLUSH_INTERVAL = 0.2
"""Seconds between hand-overs of a track's packets to the writer thread (a crash loses at most this
much more of the capture than of the media; fewer, larger writes and thread hops)."""


@dataclass
class _Captured:
    packets: PacketCapture
    file: CaptureFile
    announced: int = 0
    flushed: float = 0.0


class CaptureRecorder:
    def __init__(self, folder: Path, settings: RecorderSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.tracks: dict[str, _Captured] = {}
        self._pending: list[tuple[CaptureFile, list[Item]]] = []
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"capture {folder.name}", daemon=True)
        self._thread.start()

    async def add(
        self, spec: StreamSpec, local_rtp: Address, local_rtcp: Address | None, context: list[str]
    ) -> PacketCapture:
        """Start capturing the track; the returned PacketCapture is what its receiver feeds."""
        context = [*context, settings_comment(self.settings)]
        packets = PacketCapture(spec, self.settings.segment_seconds, local_rtp, local_rtcp, context)
        file = await asyncio.to_thread(CaptureFile, self.folder, spec.name, packets.header)
        self.tracks[spec.name] = _Captured(packets, file)
        return packets

    def tick(self, name: str) -> list[SegmentInfo]:
        """Hand what the track's capture gathered to the writer thread (every FLUSH_INTERVAL; the tracks
        of one timer step go as one job); the segments closed since the last call (in order)."""
        captured = self.tracks.get(name)
        if captured is None:
            return []
        now = time.monotonic()
        if captured.packets.items and now - captured.flushed >= FLUSH_INTERVAL:
            captured.flushed = now
            self._pending.append((captured.file, captured.packets.take()))
            if len(self._pending) == 1:
                asyncio.get_running_loop().call_soon(self._submit)
        return self._closed(captured)

    def _submit(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return

        def job() -> None:
            for file, items in batch:
                try:
                    file.write(items)
                except Exception:  # one track's failure never stops the others' captures
                    log.exception("capture of %s: a write failed", file.track)

        self._jobs.put(job)

    def label(self, name: str, now: float, **fields: object) -> None:
        captured = self.tracks.get(name)
        if captured is not None:
            captured.packets.label(now, **fields)

    def pause(self, name: str, now: float, by: str | None, reason: str | None) -> None:
        captured = self.tracks.get(name)
        if captured is not None:
            captured.packets.pause(now, by, reason)

    def resume(self, name: str, now: float) -> None:
        captured = self.tracks.get(name)
        if captured is not None:
            captured.packets.resume(now)

    async def finish(self, name: str) -> list[SegmentInfo]:
        """Write what is left, close the last segment; the segments closed since the last tick."""
        captured = self.tracks.pop(name, None)
        if captured is None:
            return []
        self._submit()  # what earlier ticks gathered goes first
        chunks = captured.packets.take()
        done: Future[None] = Future()
        file = captured.file

        def job() -> None:
            try:
                if chunks:
                    file.write(chunks)
                file.close()
            finally:
                done.set_result(None)

        self._jobs.put(job)
        await asyncio.wrap_future(done)
        return self._closed(captured)

    async def close(self) -> None:
        """Finish every track still captured (their last segments are lost to no one) and stop the thread."""
        for name in list(self.tracks):
            await self.finish(name)
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 30)

    @staticmethod
    def _closed(captured: _Captured) -> list[SegmentInfo]:
        segments = captured.file.segments
        new = segments[captured.announced : len(segments)]
        captured.announced += len(new)
        return list(new)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # one track's failure never stops the others' captures
                log.exception("capture writer: a job failed")
