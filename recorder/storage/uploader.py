"""The uploader: an asyncio task that moves spooled jobs into the object store.

Each due job is uploaded in the uploader's own worker threads (`concurrency` + 1). Success marks it
done, checks the hash when the enqueuer gave one, deletes the local file when configured and calls the
`on_uploaded` callbacks. Failure re-schedules it with exponential backoff, `retry_initial *
2**(attempts-1)` capped at `retry_max` (plus up to 10 % jitter). While the store is unreachable the
whole uploader backs off the same way, so a queue of a thousand files makes one probe per interval, not
a thousand. Jobs are never given up for a storage failure; only a vanished or changed local file fails
a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from recorder.storage.aio import AsyncObjectStore
from recorder.storage.base import ObjectStore, PutResult, StorageError, StorageUnavailableError
from recorder.storage.spool import Spool, UploadJob

log = logging.getLogger(__name__)

T = TypeVar("T")
UploadedCallback = Callable[[UploadJob, PutResult], Awaitable[None] | None]


def backoff_delay(attempts: int, initial: float, cap: float, jitter: float = 0.1) -> float:
    """Delay before retry number `attempts` (1 = first retry)."""
    base = min(cap, initial * 2.0 ** max(0, attempts - 1))
    return float(base * (1 + random.uniform(0, jitter)))


class Uploader:
    def __init__(self, spool: Spool, store: AsyncObjectStore | ObjectStore) -> None:
        self.spool = spool
        self.store = store if isinstance(store, AsyncObjectStore) else AsyncObjectStore(store)
        self.settings = spool.settings
        self.on_uploaded: list[UploadedCallback] = []
        self.store_available = True
        self.last_error: str | None = None
        self._failures = 0
        self._paused_until = 0.0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the upload task on the running loop; pending jobs from earlier runs resume."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.spool.add_listener(self.wake)
        self._task = asyncio.create_task(self._run(), name="spool uploader")

    async def stop(self) -> None:
        """Stop after the uploads in flight are cancelled; their jobs stay pending."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._pool is not None:  # an upload still in a thread ends on its own (its job stays pending)
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        """Look for due jobs now (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def wait_uploaded(self, recording_id: str | None = None, within: float = 60.0) -> bool:
        """Wait until no job (of the recording, or at all) is pending. False after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            pending = await asyncio.to_thread(self.spool.pending_count, recording_id)
            if pending == 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel
                async with asyncio.timeout(min(left, 0.5)):
                    await self._progress.wait()

    # -- work -----------------------------------------------------------------------------------------

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking step (spool, file, store) in the uploader's own threads: when many
        recordings end at once, uploads do not wait behind the rest of the process's worker-thread
        work (queueing, hashing, catalog writes) in asyncio's default pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency + 1, thread_name_prefix="uploader")
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def _run(self) -> None:
        """Upload due jobs in batches of up to `concurrency`, the finishing recordings' objects first
        (`Spool.due_jobs`). (Refilling each slot as soon as its upload ended, rather than per batch,
        measured about 15 % more CPU per upload here, one spool query per upload, for no latency
        gain that could be shown; so batches stay.)"""
        while True:
            try:
                done = await self.run_once()
            except Exception:  # a bug must not stop uploads for good
                log.exception("uploader: unexpected error")
                done = 0
            if done:
                continue
            now = time.time()
            next_due = await self._blocking(self.spool.next_due_at)
            wait = self.settings.poll_interval
            if next_due is not None:
                wait = min(wait, max(0.0, next_due - now))
            wait = max(wait, self._paused_until - now, 0.01)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    def _reachable(self) -> None:
        if not self.store_available:
            log.info("uploader: store reachable again")
        self.store_available = True
        self._failures = 0
        self._paused_until = 0.0

    async def run_once(self) -> int:
        """Upload the jobs due now (up to `concurrency` at once); returns how many were attempted."""
        if time.time() < self._paused_until:
            return 0
        jobs = await self._blocking(self.spool.due_jobs, self.settings.concurrency)
        if not jobs:
            return 0
        results = await asyncio.gather(*(self._upload(job) for job in jobs))
        if all(results):
            self._reachable()
        self._progress.set()
        return len(jobs)

    async def _upload(self, job: UploadJob) -> bool:
        """Returns False when the store was unreachable."""
        try:
            result = await self._blocking(self._put, job)
        except StorageError as exc:
            await self._retry(job, exc)
            return not isinstance(exc, StorageUnavailableError)
        if result is None:
            return True
        log.debug("uploaded %s -> %s (%d bytes)", job.local_path, job.key, result.size)
        for callback in self.on_uploaded:
            try:
                maybe = callback(job, result)
                if maybe is not None:
                    await maybe
            except Exception:
                log.exception("uploader: on_uploaded callback failed for %s", job.key)
        return True

    def _put(self, job: UploadJob) -> PutResult | None:
        """(uploader thread) Upload the job's file and settle the job, in one hop off the event loop:
        done (hash checked when the enqueuer gave one, local file deleted when configured), or failed
        for good (None) when the file is gone or changed after it was enqueued. A StorageError is
        raised for a retry."""
        path = job.local_path
        if not path.is_file():
            self.spool.mark_failed(job.id, f"local file {path} is gone")
            return None
        result = self.store.store.put_file(job.key, path, job.content_type, job.metadata)
        if job.sha256 is not None and result.sha256 != job.sha256:
            self.spool.mark_failed(
                job.id, f"{path} changed after it was enqueued: sha256 {result.sha256}, expected {job.sha256}"
            )
            return None
        self.spool.mark_done(job.id, result.sha256)
        if job.delete_after:
            path.unlink(missing_ok=True)
        return result

    async def _retry(self, job: UploadJob, exc: StorageError) -> None:
        delay = backoff_delay(job.attempts + 1, self.settings.retry_initial, self.settings.retry_max)
        await self._blocking(self.spool.mark_retry, job.id, str(exc), delay)
        self.last_error = str(exc)
        if isinstance(exc, StorageUnavailableError):
            self._failures += 1
            pause = backoff_delay(self._failures, self.settings.retry_initial, self.settings.retry_max)
            self._paused_until = max(self._paused_until, time.time() + pause)
            if self.store_available:
                log.warning("uploader: store unavailable, retrying with backoff: %s", exc)
            self.store_available = False
        else:
            log.error("uploader: store refused %s (retry in %.1fs): %s", job.key, delay, exc)
