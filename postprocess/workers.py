"""Composites off the event loop: a bounded pool of worker processes.

The service's Compositor (postprocess/compositor.py) submits a finished recording with
`await workers.submit(folder, options)`.
At most `processes` composites run at once and at most `queue` more wait; a submission beyond that waits
for room (back-pressure, never an unbounded backlog). Each job has a time limit: a job that exceeds it is
reported as CompositeTimeout and the pool's processes are replaced, so a stuck decoder cannot hold a
worker forever. Worker processes log like the process that started them (recorder.logs: the same level
and format, on the same stderr).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from postprocess.composite import build_composite
from postprocess.options import CompositeError, CompositeOptions, CompositeResult
from recorder import logs
from recorder.recording import RecordingInfo

log = logging.getLogger(__name__)


class CompositeTimeout(CompositeError):
    """A composite did not finish within its time limit."""


def log_setup() -> tuple[logs.LogLevel, logs.LogFormat]:
    """(level, format) this process logs with, for its workers."""
    root = logging.getLogger()
    name = logging.getLevelName(root.getEffectiveLevel()).lower()
    level = next((known for known in logs.LEVELS if known == name), logs.DEFAULT_LEVEL)
    json = any(isinstance(h.formatter, logs.JsonFormatter) for h in root.handlers)
    return level, "json" if json else "text"


def _init_worker(level: logs.LogLevel, log_format: logs.LogFormat) -> None:
    logs.configure(level, log_format)
    log.debug("composite worker %d started", os.getpid())


def _run(folder: Path, options: CompositeOptions, info: RecordingInfo | None) -> CompositeResult:
    log.debug("composite worker %d: building %s", os.getpid(), folder)
    return build_composite(folder, options, info)


class CompositeWorkers:
    def __init__(self, processes: int = 1, queue: int = 8, timeout: float | None = 3600.0) -> None:
        if processes < 1 or queue < 0:
            raise ValueError("processes must be >= 1 and queue >= 0")
        self.processes = processes
        self.timeout = timeout
        self._slots = asyncio.Semaphore(processes + queue)
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, nothing inherited from the service's event loop or threads.
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=log_setup(),
        )

    async def submit(
        self, folder: Path, options: CompositeOptions | None = None, info: RecordingInfo | None = None
    ) -> CompositeResult:
        """Build the recording's composite in a worker process. Raises CompositeError (bad input),
        CompositeTimeout, or what the worker raised."""
        options = options or CompositeOptions()
        async with self._slots:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, _run, Path(folder), options, info)
            try:
                async with asyncio.timeout(self.timeout):  # not wait_for: on 3.11 it can swallow a cancel
                    return await future
            except TimeoutError:
                log.error("composite of %s exceeded %s s; restarting the worker pool", folder, self.timeout)
                self._restart()
                raise CompositeTimeout(f"{folder}: composite not finished after {self.timeout} s") from None
            except BrokenProcessPool:
                log.error("a composite worker died building %s; restarting the worker pool", folder)
                self._restart()
                raise CompositeError(f"{folder}: the worker process building the composite died") from None

    def _restart(self) -> None:
        old = self._pool
        self._pool = self._new_pool()
        _terminate(old)

    def shutdown(self, wait: bool = True) -> None:
        """Stop the pool; without `wait`, composites being built are abandoned (their processes end)."""
        if wait:
            self._pool.shutdown(wait=True, cancel_futures=True)
        else:
            _terminate(self._pool)


def _terminate(pool: ProcessPoolExecutor) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
