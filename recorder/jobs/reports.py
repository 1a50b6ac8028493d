"""Forensic reports through the job queue (queue `reports`, priority 40: before everything else, a
person's GET is waiting on it, and a report takes seconds where a composite takes minutes).

An API node of a fleet without the worker role queues the report of one recording (`ReportDispatch`),
once: concurrent GETs of the recording, on this node or another, wait for the same job (the job in the
queue is found by its recording id; a queueing lock per recording keeps a second one out). Any worker
takes it and builds both formats from the recording's folder in the shared `recordings/` into the shared
`reports/<id>/`, under a hidden folder of its attempt renamed into place (recorder/api/routes_reports.py
build_report); a worker killed mid-report leaves its job stalled and another builds it again. Why a
report could not be made is left for the API beside it (`.failed.<job id>.json`); the API reads it and
removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from pydantic import BaseModel, ConfigDict

from recorder.api.routes_reports import ReportError, build_report, fresh
from recorder.durable_json import model_path, write_model
from recorder.names import check_id, child

log = logging.getLogger(__name__)

REPORT_TASK = "callvault:report"
POLL = 0.2
LIVE = ("todo", "doing")


class ReportFailure(BaseModel):
    """Why a worker made no report of a recording (read once by the API node waiting for it)."""

    model_config = ConfigDict(extra="forbid")

    error: str


def _lock(recording_id: str) -> str:
    return f"report:{recording_id}"


def _failure_name(job_id: int) -> str:
    return f".failed.{int(job_id)}"


class ReportDispatch:
    """An API node's side: queue a report and wait for it (recorder/api/routes_reports.py ReportQueue)."""

    def __init__(self, app: procrastinate.App, reports_dir: Path, wait: float) -> None:
        self.app = app
        self.reports_dir = reports_dir
        self.wait = wait

    async def _live_job(self, recording_id: str) -> int | None:
        rows = await self.app.connector.execute_query_all_async(
            "SELECT id FROM procrastinate_jobs WHERE task_name = %(task)s AND args->>'recording_id' = %(rid)s"
            " AND status::text = ANY(%(live)s) ORDER BY id DESC LIMIT 1",
            task=REPORT_TASK,
            rid=recording_id,
            live=list(LIVE),
        )
        return int(rows[0]["id"]) if rows else None

    async def _job(self, recording_id: str) -> int:
        """The recording's report job in the queue, queued now when there is none."""
        job_id = await self._live_job(recording_id)
        if job_id is not None:
            return job_id
        lock = _lock(recording_id)
        task = self.app.tasks[REPORT_TASK].configure(lock=lock, queueing_lock=lock)
        try:
            return int(await task.defer_async(recording_id=recording_id))
        except AlreadyEnqueued:  # another GET queued it meanwhile
            found = await self._live_job(recording_id)
            if found is None:  # taken and done in between: its file decides
                raise TimeoutError(f"report {recording_id}: its job ended while queueing") from None
            return found

    async def build(self, recording_id: str) -> str | None:
        check_id(recording_id, "recording id")
        job_id = await self._job(recording_id)
        log.info("recording %s: report queued (job %d)", recording_id, job_id)
        deadline = time.monotonic() + self.wait
        while True:
            rows = await self.app.connector.execute_query_all_async(
                "SELECT status::text AS status FROM procrastinate_jobs WHERE id = %(id)s", id=job_id
            )
            state = str(rows[0]["status"]) if rows else "succeeded"
            if state == "succeeded":
                return None
            if state not in LIVE:
                return await asyncio.to_thread(self._failure, recording_id, job_id, state)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"report {recording_id}: job {job_id} still {state}")
            await asyncio.sleep(POLL)

    def _failure(self, recording_id: str, job_id: int, state: str) -> str:
        path = model_path(child(self.reports_dir, recording_id), _failure_name(job_id))
        try:
            why = ReportFailure.model_validate_json(path.read_bytes()).error
        except (OSError, ValueError):
            return f"the worker's report job {job_id} {state} (see the worker's log)"
        with contextlib.suppress(OSError):
            path.unlink()
        return why


async def report(job_context: procrastinate.JobContext, recording_id: str) -> None:
    """Build the recording's report (HTML and PDF) into the shared `reports/<id>/` (unless one newer than
    the recording is there already: a second job queued while the first ran)."""
    from recorder.jobs.queue import _context  # noqa: PLC0415 (queue.py registers this task)

    ctx = _context(job_context)
    job = job_context.job
    assert job.id is not None
    rid = check_id(recording_id, "recording id")
    folder = child(ctx.data_dir / "recordings", rid)
    out = child(ctx.data_dir / "reports", rid)
    if await asyncio.to_thread(fresh, out, rid, folder):
        return
    started = time.perf_counter()
    try:
        await asyncio.to_thread(build_report, folder, rid, out, f"{job.id}.{job.attempts}.{os.getpid()}")
    except (ReportError, ImportError) as exc:
        why = str(exc) if isinstance(exc, ReportError) else f"the worker has no report extra: {exc}"
        log.error("recording %s: no report: %s", rid, why)
        await asyncio.to_thread(write_model, out, _failure_name(job.id), ReportFailure(error=why))
        raise
    log.info("recording %s: report built (%.1f s)", rid, time.perf_counter() - started)
