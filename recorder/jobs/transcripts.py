"""Transcripts (and the redactions that follow them) through the job queue (queue `transcripts`).

The recorder that finished a recording queues one job per transcript job of its Transcriber (ids and the
work asked: transcribe, redact the card numbers, an admin's intervals); a worker node does the CPU-heavy
part (recorder/transcripts/work.py, in its own pool of processes) on the shared recording folder, in a
hidden folder of its own attempt, `<folder>/.transcript.<job>.<attempt>.<pid>.tmp/`, which sees the
recording's files through symbolic links: what the attempt writes (transcript.json, transcript.vtt,
redacted-<n>/) stays in it (a worker killed mid-job leaves only that hidden folder). The result (what was
made, or why not) goes to `<folder>/.transcript-result.<job>.tmp`. The recorder, the only writer of the
recording's manifest, moves the attempt's files into place (a rename inside the recording folder: one
volume, whatever else the node mounts) and publishes them
(recorder/transcripts/service.py: index, manifest revision, upload, transcript.ready, redaction.finished
or transcript.failed, once).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import procrastinate
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.manifest import MANIFEST_NAME
from recorder.names import check_id, child
from recorder.transcripts.settings import TranscriptSettings
from recorder.transcripts.work import (
    Interval,
    TranscriptWorkers,
    WorkError,
    Workers,
    WorkRequest,
    WorkResult,
)

log = logging.getLogger(__name__)

TRANSCRIPT_TASK = "callvault:transcript"
TICKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(\.redaction-[0-9]{1,20})?$")
"""A Transcriber's job id: the recording id, or `<recording id>.redaction-<ms>`."""
MISSING_EXTRA = (
    "this worker node cannot transcribe: the transcribe extra is not installed"
    " (pip install 'callvault[transcribe]')"
)


class QueuedResult(BaseModel):
    """What a worker made of one transcript job: its WorkResult and the attempt folder holding the files,
    or why not."""

    model_config = ConfigDict(extra="forbid")

    result: WorkResult | None = None
    staged: str | None = Field(default=None, description="The attempt's hidden folder in the recording's.")
    error: str | None = None


def check_ticket(ticket: str) -> str:
    """A Transcriber's job id (see TICKET), or ValueError."""
    if not isinstance(ticket, str) or TICKET.match(ticket) is None:
        raise ValueError("not a transcript job id")
    return ticket


def staged_dir(attempt: str) -> str:
    """The hidden folder one attempt works in, in the recording folder ('.*.tmp': in no manifest)."""
    return f".transcript.{attempt}.tmp"


def result_name(job_id: int) -> str:
    """The hidden file, in the recording folder, of what a worker made of one job (a QueuedResult)."""
    return f".transcript-result.{int(job_id)}.tmp"


def job_args(recording_id: str, ticket: str, request: WorkRequest) -> dict[str, Any]:
    """A job's arguments: ids and the work asked (never a path: the worker finds the folder by the id)."""
    check_id(recording_id, "recording id")
    check_ticket(ticket)
    return {
        "recording_id": recording_id,
        "ticket": ticket,
        "transcribe": request.transcribe,
        "redact_auto": request.redact_auto,
        "manual": [i.model_dump() for i in request.manual],
        "composites": sorted(o.out.name for o in request.composites if o.out is not None),
    }


def cannot_transcribe(settings: TranscriptSettings) -> str | None:
    """(blocking) Why this node cannot run the model (the transcribe extra, transcripts.model), or None."""
    try:
        found = importlib.util.find_spec("faster_whisper") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return MISSING_EXTRA
    if settings.model is not None and not settings.model.is_dir():
        return f"this worker node cannot transcribe: transcripts.model {settings.model} is not a folder"
    return None


def view(folder: Path, target: Path) -> None:
    """(blocking) `target` made a folder that shows the recording's files (not hidden ones) as links."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for entry in folder.iterdir():
        if not entry.name.startswith("."):
            (target / entry.name).symlink_to(entry.resolve())


def made(target: Path) -> set[str]:
    """(blocking) Names in the attempt's folder that are its own (not links to the recording's files)."""
    return {p.name for p in target.iterdir() if not p.is_symlink()}


async def transcript(
    job_context: procrastinate.JobContext,
    recording_id: str,
    ticket: str,
    transcribe: bool,
    redact_auto: bool,
    manual: list[dict[str, Any]],
    composites: list[str],
) -> str:
    """(worker) Do one transcript job in an attempt folder; its result file for the recorder."""
    from recorder.jobs.queue import _context  # noqa: PLC0415  (queue.py registers this task)

    ctx = _context(job_context)
    job = job_context.job
    assert job.id is not None
    attempt = f"{job.id}.{job.attempts}.{os.getpid()}"
    folder = child(ctx.data_dir / "recordings", check_id(recording_id, "recording id"))  # (no result)
    target: Path | None = None
    try:
        check_ticket(ticket)
        if not await asyncio.to_thread(folder.is_dir):
            raise WorkError(f"recording {recording_id} is not in the shared data folder")
        why = await asyncio.to_thread(cannot_transcribe, ctx.transcripts) if transcribe else None
        if why is not None:
            raise WorkError(why)
        try:
            intervals = [Interval.model_validate(i) for i in manual]
        except ValidationError as exc:
            raise WorkError(f"bad redaction intervals: {exc.errors()[0]['msg']}") from None
        target = folder / staged_dir(attempt)
        await asyncio.to_thread(view, folder, target)
        wanted = set(composites)
        options = [
            o
            for o in ctx.composite.jobs(target)
            if o.out is not None and o.out.name in wanted and (folder / o.out.name).is_file()
        ]
        request = WorkRequest(
            folder=target,
            transcribe=transcribe,
            redact_auto=redact_auto,
            manual=intervals,
            composites=options,
        )
        workers = ctx.transcribers.setdefault("pool", TranscriptWorkers(ctx.transcripts))
        result = await workers.submit(request)
    except WorkError as exc:
        log.error("recording %s: transcript job %s failed: %s", recording_id, job.id, exc)
        with contextlib.suppress(OSError):  # (no folder: no result; the recorder says so)
            await asyncio.to_thread(_write, folder, job.id, QueuedResult(error=str(exc)))
        if target is not None:
            await asyncio.to_thread(shutil.rmtree, target, True)
        raise
    await asyncio.to_thread(_write, folder, job.id, QueuedResult(result=result, staged=target.name))
    log.info("recording %s: transcript job %s done (%d words)", recording_id, job.id, result.words)
    return target.name


def _write(folder: Path, job_id: int, queued: QueuedResult) -> None:
    """(blocking) The result file, written beside and renamed into place (the whole file or none)."""
    path = folder / result_name(job_id)
    tmp = folder / f"{path.name}.{os.getpid()}"
    with tmp.open("wb") as f:
        f.write(queued.model_dump_json().encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def place(folder: Path, queued: QueuedResult) -> WorkResult:
    """(blocking, recorder) The attempt's files moved into the recording folder (the recorder alone does,
    once: what is already in place stays); every attempt folder of the recording removed. Raises
    WorkError."""
    if queued.result is None:
        raise WorkError(queued.error or "the worker gave no result")
    result = queued.result
    staged = queued.staged or ""
    if not (staged.startswith(".transcript.") and staged.endswith(".tmp")):
        raise WorkError("the worker's result names no attempt folder")
    try:
        source: Path | None = child(folder, staged)
    except ValueError:
        raise WorkError("the worker's result names no attempt folder") from None
    if source is not None and not source.is_dir():
        source = None
    tops = {n.split("/", 1)[0] for n in [*result.transcript, *result.redacted]}
    for top in sorted(tops):
        if top.startswith(".") or "/" in top or top in ("", ".."):
            raise WorkError(f"the worker's result names {top!r}")
        there = folder / top
        if source is not None and (source / top).exists() and not (source / top).is_symlink():
            if there.is_dir() and top.startswith("redacted-"):
                continue  # (moved before a restart)
            os.replace(source / top, there)
        if not there.exists():
            raise WorkError(f"{top}: the worker's file is missing from the recording folder")
    _tidy(folder)
    return result


def _tidy(folder: Path) -> None:
    """(blocking) Every attempt folder of the recording removed."""
    for stray in folder.glob(".transcript.*.tmp"):
        shutil.rmtree(stray, ignore_errors=True)


async def transcript_job(app: procrastinate.App, ticket: str) -> tuple[int, str] | None:
    """The newest queue job of a Transcriber's job and its state, if any."""
    rows = await app.connector.execute_query_all_async(
        "SELECT id, status::text AS status FROM procrastinate_jobs"
        " WHERE task_name = %(task)s AND args->>'ticket' = %(ticket)s ORDER BY id DESC LIMIT 1",
        task=TRANSCRIPT_TASK,
        ticket=check_ticket(ticket),
    )
    return (int(rows[0]["id"]), str(rows[0]["status"])) if rows else None


async def transcript_jobs_of(app: procrastinate.App, ticket: str) -> list[tuple[str, int]]:
    """(state, attempts) of every queue job of a Transcriber's job, oldest first."""
    rows = await app.connector.execute_query_all_async(
        "SELECT status::text AS status, attempts FROM procrastinate_jobs"
        " WHERE task_name = %(task)s AND args->>'ticket' = %(ticket)s ORDER BY id",
        task=TRANSCRIPT_TASK,
        ticket=check_ticket(ticket),
    )
    return [(str(row["status"]), int(row["attempts"])) for row in rows]


class QueuedTranscripts:
    """A recorder's Transcriber.workers on split roles: each job goes to the queue and a worker node does
    it; `submit` waits for it and moves what the worker made into the recording folder. A job already in
    the queue for the same Transcriber job (a restart, a catalog outage on the way) is followed, never
    queued twice."""

    def __init__(
        self,
        app: procrastinate.App,
        manifest_first: bool,
        recordings: Path,
        local: Workers,
        poll: float = 0.5,
    ) -> None:
        self.app = app
        self.recordings = recordings
        self.local = local
        """For a folder the workers cannot see: an admin's redaction of a recording whose local copy is
        gone, restored from the store into this node's own `<data_dir>/transcripts/restored/`."""
        self.manifest_first = manifest_first
        """With an archive: queue once the recording's first manifest is in its folder (built from the
        folder's files: an attempt's folder must not be there then)."""
        self.poll = poll
        self.queued = 0

    async def submit(self, request: WorkRequest, ticket: str | None = None) -> WorkResult:
        from recorder.jobs.queue import DONE  # noqa: PLC0415

        folder = request.folder
        if folder.parent != self.recordings:  # (a redaction needs no model: this node's pool does it)
            return await self.local.submit(request, ticket)
        rid = check_id(folder.name, "recording id")
        ticket = check_ticket(ticket or rid)
        known = await transcript_job(self.app, ticket)
        path = None if known is None else folder / result_name(known[0])
        if self.manifest_first:
            while not await asyncio.to_thread((folder / MANIFEST_NAME).is_file):  # noqa: ASYNC110
                await asyncio.sleep(self.poll)
        if known is None or (known[1] in DONE and not await asyncio.to_thread(path.is_file)):  # type: ignore[union-attr]
            task = self.app.tasks[TRANSCRIPT_TASK]
            job = int(await task.defer_async(**job_args(rid, ticket, request)))
            self.queued += 1
            log.info("recording %s: transcript job %s queued (job %d)", rid, ticket, job)
        else:
            job = known[0]
            log.info("recording %s: transcript job %s follows queue job %d", rid, ticket, job)
        while True:
            rows = await self.app.connector.execute_query_all_async(
                "SELECT status::text AS status FROM procrastinate_jobs WHERE id = %(id)s", id=job
            )
            state = str(rows[0]["status"]) if rows else "gone"
            if state in DONE | {"gone"}:
                break
            await asyncio.sleep(self.poll)
        path = folder / result_name(job)
        queued = await asyncio.to_thread(_read, path)
        if queued is None:
            raise WorkError(f"queue job {job} {state} without a result (see the worker's log)")
        try:
            return await asyncio.to_thread(place, folder, queued)
        except WorkError:
            await asyncio.to_thread(_tidy, folder)
            raise
        finally:
            await asyncio.to_thread(path.unlink, True)

    def shutdown(self) -> None:
        self.local.shutdown()


def _read(path: Path) -> QueuedResult | None:
    try:
        return QueuedResult.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None
