"""The distributed job queue (procrastinate on the PostgreSQL catalog).

A job carries only ids (a recording id, a profile); whichever worker node takes it reads the recording
from the shared store (`<data_dir>/recordings/<id>/`, a volume every worker mounts) and writes its result
there. Queues and priorities: reports (40: a GET waits on it, recorder/jobs/reports.py) before
composites (30) before transcripts (20) before exports (10); a worker takes the highest priority first
(a transcript and its card-number redaction must not wait behind a bulk
export). A worker that dies mid-job stops sending heartbeats; every worker looks for such stalled jobs
every few seconds and puts them back in the queue (procrastinate's stalled-job retry),
so another worker builds the same result again: the output is written to a work folder of its own job
attempt and moved into place atomically, a half-written file of the dead worker is never seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from pydantic import BaseModel, ConfigDict, Field

from postprocess.composite import build_composite
from postprocess.options import CompositeError, CompositeOptions, Profile
from postprocess.settings import CompositeSettings
from recorder.durable_json import write_model
from recorder.jobs.settings import JobSettings
from recorder.names import check_id, child
from recorder.transcripts.settings import TranscriptSettings
from recorder.transcripts.work import TranscriptWorkers

log = logging.getLogger(__name__)

PRIORITIES = {"reports": 40, "composites": 30, "transcripts": 20, "exports": 10}
"""Queue -> priority (higher first): the chart scales workers on callvault_jobs_pending (all queues)."""
SCHEMA_LOCK = 0x63765F6A6F6273  # advisory lock: nodes starting together create the schema once

COMPOSITE_TASK = "callvault:composite"
AUDIO_MIX = "audio"
"""The output name of the audio-only mix (composite.audio_mix) beside the profiles' names."""
RESULTS_DIR = Path("composites") / "results"
"""Under data_dir: `<recording id>.<job id>.json`, what a worker made of one job (a CompositeResult)."""
DONE = frozenset({"succeeded", "failed", "cancelled", "aborted"})
"""procrastinate's job states after which nothing more happens to the job."""


class CompositeResult(BaseModel):
    """What a worker made of one composite job: the file it built in the recording folder, or why not."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(default=None, description="The composite's name ('composite-hd.mp4').")
    staged: str | None = Field(
        default=None, description="Where the attempt left it in the recording folder (a hidden '.*.tmp')."
    )
    error: str | None = None


def staged_name(name: str, attempt: str) -> str:
    """The hidden name one attempt leaves its composite under in the recording folder: only the recorder
    gives it its real name (once, when it hands it to its archive), so an attempt that ends after another
    one (a worker found stalled but still alive) never replaces a composite the manifest already lists.
    '.*.tmp' files are in no manifest and no listing."""
    return f".{name}.{attempt}.tmp"


def outputs(settings: CompositeSettings) -> list[str]:
    """The composite jobs of one recording: one per profile, then the audio mix (as settings.jobs)."""
    return [p.value for p in dict.fromkeys(settings.profiles)] + ([AUDIO_MIX] if settings.audio_mix else [])


def options_for(settings: CompositeSettings, folder: Path, output: str) -> CompositeOptions:
    """The options of one output (a profile's name or AUDIO_MIX) of the recording in `folder`."""
    for options in settings.jobs(folder):
        name = AUDIO_MIX if options.audio_only else options.profile.value
        if name == output and options.out is not None:
            return options
    raise CompositeError(f"composite {output!r} is not one of composite.profiles (or the audio mix)")


def result_path(data_dir: Path, recording_id: str, job_id: int) -> Path:
    return data_dir / RESULTS_DIR / f"{check_id(recording_id, 'recording id')}.{int(job_id)}.json"


class WorkerContext(BaseModel):
    """What a worker node knows that a job does not carry."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    data_dir: Path
    composite: CompositeSettings
    transcripts: TranscriptSettings = Field(default_factory=TranscriptSettings)
    transcribers: dict[str, TranscriptWorkers] = Field(default_factory=dict)
    """The node's pool of transcript processes (made on the first transcript job)."""
    exports: Any = None
    """The node's export runner (recorder/jobs/exports.py ExportWorker; its catalog opened on the first
    export job)."""


def make_app(conninfo: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    app.task(name=COMPOSITE_TASK, queue="composites", priority=PRIORITIES["composites"], pass_context=True)(
        composite
    )
    from recorder.jobs.transcripts import TRANSCRIPT_TASK, transcript  # noqa: PLC0415  (it imports us)

    app.task(
        name=TRANSCRIPT_TASK, queue="transcripts", priority=PRIORITIES["transcripts"], pass_context=True
    )(transcript)
    from recorder.jobs.exports import EXPORT_TASK, export  # noqa: PLC0415  (it imports us)

    app.task(name=EXPORT_TASK, queue="exports", priority=PRIORITIES["exports"], pass_context=True)(export)
    from recorder.jobs.reports import REPORT_TASK, report  # noqa: PLC0415  (it imports us)

    app.task(name=REPORT_TASK, queue="reports", priority=PRIORITIES["reports"], pass_context=True)(report)
    return app


async def ensure_schema(conninfo: str) -> None:
    """Create procrastinate's tables once (nodes starting together take turns on an advisory lock)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
            if row is None or row[0] is None:
                sql = procrastinate.schema.SchemaManager.get_schema()
                await conn.execute(sql)
                log.info("job queue: procrastinate schema created")
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


async def defer_composite(app: procrastinate.App, recording_id: str, profile: Profile | str) -> int:
    """Queue the composite of one recording in one profile (or AUDIO_MIX); returns the job id."""
    check_id(recording_id, "recording id")
    task = app.tasks[COMPOSITE_TASK]
    output = profile.value if isinstance(profile, Profile) else str(profile)
    return int(await task.defer_async(recording_id=recording_id, profile=output))


async def composite_jobs(app: procrastinate.App, recording_id: str) -> dict[str, int]:
    """The newest composite job of the recording per output (profile) already in the queue."""
    rows = await app.connector.execute_query_all_async(
        "SELECT id, args->>'profile' AS output FROM procrastinate_jobs"
        " WHERE task_name = %(task)s AND args->>'recording_id' = %(rid)s ORDER BY id",
        task=COMPOSITE_TASK,
        rid=check_id(recording_id, "recording id"),
    )
    return {str(row["output"]): int(row["id"]) for row in rows}


async def job_states(app: procrastinate.App, ids: Iterable[int]) -> dict[int, str]:
    """procrastinate's state of each job (a job no longer in the table is missing from the answer)."""
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    rows = await app.connector.execute_query_all_async(
        "SELECT id, status::text AS status FROM procrastinate_jobs WHERE id = ANY(%(ids)s)", ids=wanted
    )
    return {int(row["id"]): str(row["status"]) for row in rows}


async def backlog(app: procrastinate.App) -> dict[str, int]:
    """Jobs to do or being done, per queue (every known queue, 0 when empty)."""
    counts = dict.fromkeys(PRIORITIES, 0)
    for row in await app.job_manager.list_queues_async():
        counts[str(row["name"])] = int(row["todo"]) + int(row["doing"])
    return counts


async def retry_stalled(app: procrastinate.App, stalled_seconds: float) -> int:
    """Put the jobs of workers silent for `stalled_seconds` back in their queue; how many."""
    stalled: Iterable[procrastinate.jobs.Job] = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=stalled_seconds
    )
    n = 0
    for job in stalled:
        log.warning("job %s (%s) stalled: its worker stopped; queued again", job.id, job.task_name)
        await app.job_manager.retry_job(job)
        n += 1
    return n


async def run_worker(
    app: procrastinate.App, context: WorkerContext, settings: JobSettings, stop: asyncio.Event
) -> None:
    """Take jobs from every queue (highest priority first) until `stop`; retry stalled jobs meanwhile."""

    async def watch_stalled() -> None:
        interval = max(settings.heartbeat_seconds, settings.stalled_seconds / 4)
        while True:
            try:
                await retry_stalled(app, settings.stalled_seconds)
            except psycopg.Error as exc:
                log.warning("job queue: stalled jobs not checked: %s", str(exc).splitlines()[0])
            await asyncio.sleep(interval)

    worker = asyncio.create_task(
        app.run_worker_async(
            queues=list(PRIORITIES),
            concurrency=settings.concurrency,
            name=f"callvault-{os.getpid()}",
            install_signal_handlers=False,
            update_heartbeat_interval=settings.heartbeat_seconds,
            stalled_worker_timeout=settings.stalled_seconds,
            additional_context={"callvault": context},
            wait=True,
        )
    )
    watcher = asyncio.create_task(watch_stalled())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        worker.cancel()  # procrastinate: a cancelled worker ends after its running jobs (graceful)
        stopping.cancel()
        for t in (watcher, worker, stopping):
            with contextlib.suppress(asyncio.CancelledError):
                await t
    if worker.done() and not worker.cancelled() and worker.exception() is not None:
        raise worker.exception()  # type: ignore[misc]


def _context(job_context: procrastinate.JobContext) -> WorkerContext:
    extra: dict[str, Any] = job_context.additional_context or {}
    ctx = extra.get("callvault")
    if not isinstance(ctx, WorkerContext):
        raise RuntimeError("a callvault job runs only in a callvault worker")
    return ctx


def build_one(ctx: WorkerContext, recording_id: str, output: str, attempt: str) -> Path:
    """(worker thread) Build the recording's composite `output` (a profile, or AUDIO_MIX) into its
    folder under the attempt's hidden name (`staged_name`); its path."""
    folder = child(ctx.data_dir / "recordings", check_id(recording_id, "recording id"))
    if not folder.is_dir():
        raise CompositeError(f"recording {recording_id} is not in the shared data folder")
    options = options_for(ctx.composite, folder, output)
    assert options.out is not None
    work = ctx.data_dir / "composites" / "work" / f"{recording_id}.{attempt}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        result = build_composite(folder, options.model_copy(update={"out": work / options.out.name}))
        staged = folder / staged_name(options.out.name, attempt)
        os.replace(result.path, staged)  # atomic: the whole file or none
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("recording %s: %s built (%.1f s of call)", recording_id, options.out.name, result.duration)
    return staged


async def composite(job_context: procrastinate.JobContext, recording_id: str, profile: str) -> str:
    """Build one composite; its result (the file, or why not) is written beside the shared recordings
    for the recorder that queued it (recorder/jobs/sink.py), which archives and announces it."""
    ctx = _context(job_context)
    job = job_context.job
    assert job.id is not None
    attempt = f"{job.id}.{job.attempts}.{os.getpid()}"
    results = ctx.data_dir / RESULTS_DIR
    try:
        path = await asyncio.to_thread(build_one, ctx, recording_id, profile, attempt)
    except Exception as exc:
        why = str(exc) if isinstance(exc, CompositeError) else f"{type(exc).__name__}: {exc}"
        log.error("recording %s: composite %s failed: %s", recording_id, profile, why)
        with contextlib.suppress(ValueError):  # an id that names no folder gets no result file
            name = result_path(ctx.data_dir, recording_id, job.id).stem
            await asyncio.to_thread(write_model, results, name, CompositeResult(error=why))
        raise
    name = result_path(ctx.data_dir, recording_id, job.id).stem
    out = path.name.removeprefix(".").removesuffix(f".{attempt}.tmp")
    await asyncio.to_thread(write_model, results, name, CompositeResult(file=out, staged=path.name))
    return out


class Backlog:
    """The queue's backlog per queue, read every `interval` s (metrics are read synchronously)."""

    def __init__(self, app: procrastinate.App, interval: float = 5.0) -> None:
        self.app = app
        self.interval = interval
        self.counts = dict.fromkeys(PRIORITIES, 0)

    def values(self) -> dict[str, int]:
        """callvault_jobs_<queue>_pending per queue, and callvault_jobs_pending: all of them (what the
        workers' autoscaler follows: every worker takes every queue)."""
        per_queue = {f"{queue}_pending": n for queue, n in self.counts.items()}
        return per_queue | {"pending": sum(self.counts.values())}

    async def follow(self) -> None:
        while True:
            try:
                self.counts = await backlog(self.app)
            except psycopg.Error as exc:
                log.warning("job queue: backlog not read: %s", str(exc).splitlines()[0])
            await asyncio.sleep(self.interval)
