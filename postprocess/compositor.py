"""`Compositor`: the RecordingSink that builds a composite of every finished recording that wants one.

When a recording finishes and its room's `outputs` (or, without one, `[composite] enabled`) asks for a
composite, `recording_finished` writes a job file (`<data_dir>/composites/jobs/<recording id>.json`) and
returns at once; a task then builds each composite of `CompositeSettings.jobs` in the bounded pool of
worker processes (postprocess/workers.py, never on the event loop), in a work folder
(`<data_dir>/composites/work/<recording id>/`), moves the results into the recording folder and hands them
to `publish` (the archive's `add_composites`: manifest revision, upload, composite.finished). Only then is
the job file removed, so a restart at any point builds the composites again; while a job exists,
`holding(recording_id)` is true, which keeps the archive from deleting the local folder the composite
reads.

Register it before the archive among the manager's sinks, so the hold exists before the archive can
finish storing the recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from postprocess.options import CompositeError
from postprocess.settings import CompositeSettings
from postprocess.workers import CompositeWorkers
from recorder.durable_json import read_models, remove_model, write_model
from recorder.models import TrackSummary
from recorder.recording import FinishedRecordingSink, RecordingInfo

log = logging.getLogger(__name__)

Publish = Callable[[RecordingInfo, Sequence[str], Sequence[str]], Awaitable[None]]
"""(recording, composite files relative to its folder, errors) -> stored and announced durably."""


class CompositeJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    info: RecordingInfo
    queued_at: float


class Compositor(FinishedRecordingSink):
    """See the module documentation."""

    def __init__(
        self,
        settings: CompositeSettings,
        data_dir: Path,
        publish: Publish | None = None,
        workers: CompositeWorkers | None = None,
    ) -> None:
        self.settings = settings
        self.jobs_dir = data_dir / "composites" / "jobs"
        self.work_dir = data_dir / "composites" / "work"
        self.publish = publish
        self.workers = workers or CompositeWorkers(settings.processes, settings.queue, settings.timeout)
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        self.built = 0
        self.failed = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build again what a stop or a crash interrupted."""
        jobs = await asyncio.to_thread(self._read_jobs)
        for job in jobs:
            self._held.add(job.info.recording_id)
            self._spawn(job)
        if jobs:
            log.info("composites: %d interrupted jobs resumed", len(jobs))

    async def stop(self) -> None:
        """Cancel what is running (its job files stay for the next start) and stop the workers."""
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.workers.shutdown, False)

    def holding(self, recording_id: str) -> bool:
        """Whether a composite of the recording is still to be built or handed over."""
        return recording_id in self._held

    def stats(self) -> dict[str, int]:
        return {"pending": len(self._held), "built": self.built, "failed": self.failed}

    async def wait_idle(self) -> None:
        """Until no composite is pending (tests, shutdown)."""
        while self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    # -- RecordingSink (FinishedRecordingSink ignores the rest) -----------------------------------------

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        rid = info.recording_id
        if not self.settings.wanted(info.metadata.get("outputs")) or rid in self._held:
            return
        if not any(t.file for t in tracks):
            log.info("recording %s: no media, no composite", rid)
            return
        job = CompositeJob(info=info.model_copy(deep=True), queued_at=time.time())
        self._held.add(rid)
        try:
            await asyncio.to_thread(write_model, self.jobs_dir, rid, job)
        except OSError:
            self._held.discard(rid)
            raise
        self._spawn(job)

    # -- jobs -------------------------------------------------------------------------------------------

    def _spawn(self, job: CompositeJob) -> None:
        rid = job.info.recording_id
        task = asyncio.create_task(self._run(job), name=f"composite {rid}")
        self._jobs[rid] = task
        task.add_done_callback(lambda _: self._jobs.pop(rid, None))

    async def _run(self, job: CompositeJob) -> None:
        info = job.info
        rid = info.recording_id
        work = self.work_dir / rid
        await asyncio.to_thread(shutil.rmtree, work, True)
        await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
        built: list[str] = []
        errors: list[str] = []
        for options in self.settings.jobs(info.folder):
            assert options.out is not None
            name = options.out.name
            try:
                result = await self.workers.submit(
                    info.folder, options.model_copy(update={"out": work / name}), info
                )
            except CompositeError as exc:
                errors.append(f"{name}: {exc}")
                continue
            except Exception as exc:  # a worker that died, a decoder bug: reported, never fatal
                log.exception("recording %s: composite %s failed", rid, name)
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            await asyncio.to_thread(os.replace, result.path, info.folder / name)
            built.append(name)
            for warning in result.warnings:  # reported here once (the worker does not log them)
                log.warning("recording %s: composite %s: %s", rid, name, warning)
            log.info(
                "recording %s: %s built (%.1f s of call, %.1fx real time)",
                rid,
                name,
                result.duration,
                result.speed,
            )
        self.built += len(built)
        self.failed += len(errors)
        for error in errors:
            log.error("recording %s: composite failed: %s", rid, error)
        if self.publish is not None:
            try:
                await self.publish(info, built, errors)
            except Exception:  # the job stays: the next start builds and hands it over again
                log.exception("recording %s: composites built but not handed over", rid)
                return
        await asyncio.to_thread(remove_model, self.jobs_dir, rid)
        await asyncio.to_thread(shutil.rmtree, work, True)
        self._held.discard(rid)

    def _read_jobs(self) -> list[CompositeJob]:
        jobs, bad = read_models(self.jobs_dir, CompositeJob)
        for path, why in bad:
            log.error("composites: unreadable job %s, left in place: %s", path, why)
        return jobs
