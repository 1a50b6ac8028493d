"""A recorder node's side of the job queue: a finished recording's composites are queued (ids only), and
once the workers are done the recorder hands what they built to its own archive.

The recording sink used instead of the in-process Compositor on split roles: one job per composite output
(each profile, then the audio mix) of a recording that wants composites (its room's `outputs`, else
composite.enabled). With an archive (`publish` is its `add_composites`), the recorder stays the only writer
of the recording's manifest, as in one process:

1. `recording_finished` writes a ticket (`<spool>/queued-composites/<recording id>.json`, durable) and
   holds the recording's folder (`holding`), then queues the jobs a worker takes (a job already in the
   queue for the same recording and output is taken over, never queued twice) and rewrites the ticket
   with their ids;
2. a follow task reads the jobs' states every `poll` seconds; when every job of a recording is over
   (succeeded, failed), it hands the files the workers built and the errors (each worker's result file
   under `<data_dir>/composites/results/`) to `publish` — the archive's composite ticket: manifest
   revision, encryption, upload, composite.finished or composite.failed, exactly once (fixed webhook ids);
3. then removes the ticket and the result files and lets the folder go (`delete_local_after_upload`, an
   encrypted recording's plaintext).

A restart at any point finds the ticket and goes on from the jobs' states in PostgreSQL; a worker killed
mid-job is replaced by another (the stalled-job retry), which the recorder does not even see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import procrastinate
import psycopg
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from postprocess.options import CompositeError
from postprocess.settings import CompositeSettings
from recorder.durable_json import read_models, remove_model, write_model
from recorder.jobs.queue import (
    DONE,
    CompositeResult,
    composite_jobs,
    defer_composite,
    job_states,
    options_for,
    outputs,
    result_path,
)
from recorder.manifest import MANIFEST_NAME, Manifest
from recorder.models import TrackSummary
from recorder.names import UnsafeNameError, child
from recorder.recording import FinishedRecordingSink, RecordingInfo

log = logging.getLogger(__name__)

TICKETS_DIR = "queued-composites"
"""Under the archive's spool folder (each recorder has its own): one QueuedComposites per recording."""

Publish = Callable[[RecordingInfo, Sequence[str], Sequence[str]], Awaitable[None]]
"""(recording, composite files relative to its folder, errors) -> stored and announced durably."""


class QueuedComposites(BaseModel):
    """The durable promise to hand a recording's queued composites to the archive once built."""

    model_config = ConfigDict(extra="forbid")

    info: RecordingInfo
    outputs: list[str] = Field(description="Composite outputs to build: profiles, then 'audio' (the mix).")
    jobs: dict[str, int] = Field(default_factory=dict, description="Output -> its job in the queue.")
    queued_at: float

    @property
    def recording_id(self) -> str:
        return self.info.recording_id


class CompositeQueue(FinishedRecordingSink):
    """See the module documentation. Without `tickets_dir` (no archive) the jobs are only queued."""

    def __init__(
        self,
        app: procrastinate.App,
        settings: CompositeSettings,
        *,
        data_dir: Path | None = None,
        tickets_dir: Path | None = None,
        publish: Publish | None = None,
        poll: float = 1.0,
    ) -> None:
        self.app = app
        self.settings = settings
        self.data_dir = data_dir
        self.tickets_dir = tickets_dir if publish is not None else None
        self.publish = publish
        self.poll = poll
        self.queued = 0
        self.handed = 0
        self._tickets: dict[str, QueuedComposites] = {}
        self._resumed: set[str] = set()
        """Tickets an earlier run left: handed over already if the manifest lists their composites."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._queueing = asyncio.Lock()
        """One queueing at a time: the follow task and recording_finished must not queue a job twice."""

    def stats(self) -> dict[str, int]:
        return {"queued": self.queued, "waiting": len(self._tickets), "handed_over": self.handed}

    def holding(self, recording_id: str) -> bool:
        """Whether the recording's composites are still to be built by a worker or handed over (its
        folder must stay: the workers read it)."""
        return recording_id in self._tickets

    # -- lifecycle ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the tickets an earlier run left (before the archive starts: their folders are held)."""
        if self.tickets_dir is None:
            return
        tickets, bad = await asyncio.to_thread(read_models, self.tickets_dir, QueuedComposites)
        for path, why in bad:
            log.error("composite queue: unreadable ticket %s, left in place: %s", path, why)
        self._tickets = {t.recording_id: t for t in tickets}
        self._resumed = set(self._tickets)
        if tickets:
            log.info("composite queue: %d recordings wait for their queued composites", len(tickets))

    def start(self) -> None:
        if self.tickets_dir is not None and self._task is None:
            self._task = asyncio.create_task(self._follow(), name="queued composites")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- RecordingSink --------------------------------------------------------------------------------

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        rid = info.recording_id
        if not self.settings.wanted(info.metadata.get("outputs")) or rid in self._tickets:
            return
        if not any(t.file for t in tracks):
            log.info("recording %s: no media, no composite", rid)
            return
        wanted = outputs(self.settings)
        ticket = QueuedComposites(info=info.model_copy(deep=True), outputs=wanted, queued_at=time.time())
        if self.tickets_dir is not None:
            self._tickets[rid] = ticket  # held from now on
            try:
                await asyncio.to_thread(write_model, self.tickets_dir, rid, ticket)
            except OSError:
                self._tickets.pop(rid, None)
                raise
        await self._queue(ticket)
        self._wake.set()

    async def _queue(self, ticket: QueuedComposites) -> None:
        """Queue the ticket's outputs that have no job yet (one already in the queue is taken over)."""
        if all(o in ticket.jobs for o in ticket.outputs):
            return
        async with self._queueing:
            await self._queue_missing(ticket)

    async def _queue_missing(self, ticket: QueuedComposites) -> None:
        rid = ticket.recording_id
        missing = [o for o in ticket.outputs if o not in ticket.jobs]
        if not missing:
            return
        known = await composite_jobs(self.app, rid) if self.tickets_dir is not None else {}
        for output in missing:
            job = known.get(output)
            if job is None:
                job = await defer_composite(self.app, rid, output)
                self.queued += 1
                log.info("recording %s: composite %s queued (job %d)", rid, output, job)
            ticket.jobs[output] = job
        if self.tickets_dir is not None:
            await asyncio.to_thread(write_model, self.tickets_dir, rid, ticket)

    # -- following the jobs ---------------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                await self._check()
            except (psycopg.Error, procrastinate.exceptions.ConnectorException) as exc:
                log.warning("composite queue: jobs not read: %s", str(exc).splitlines()[0])
            except Exception:
                log.exception("composite queue: cannot follow the queued composites")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()

    async def _check(self) -> None:
        for ticket in list(self._tickets.values()):
            await self._queue(ticket)  # after a restart between the ticket and the queueing
        ids = [job for t in self._tickets.values() for job in t.jobs.values()]
        states = await job_states(self.app, ids)
        for ticket in list(self._tickets.values()):
            queued = set(ticket.jobs) >= set(ticket.outputs)  # not a ticket still being queued
            if queued and all(states.get(job, "gone") in DONE | {"gone"} for job in ticket.jobs.values()):
                await self._hand_over(ticket, states)

    async def _hand_over(self, ticket: QueuedComposites, states: dict[int, str]) -> None:
        rid = ticket.recording_id
        files, errors = await asyncio.to_thread(self._results, ticket, states)
        folder = ticket.info.folder
        if rid in self._resumed and files and await asyncio.to_thread(listed, folder, files):
            log.info("recording %s: queued composites were handed over before a restart", rid)
        elif self.publish is not None:
            await self.publish(ticket.info, files, errors)  # raises: kept, tried again next time
        self._resumed.discard(rid)
        self.handed += 1
        assert self.tickets_dir is not None
        await asyncio.to_thread(remove_model, self.tickets_dir, rid)
        self._tickets.pop(rid, None)
        if self.data_dir is not None:
            for job in ticket.jobs.values():
                with contextlib.suppress(OSError, ValueError):
                    await asyncio.to_thread(result_path(self.data_dir, rid, job).unlink, True)
        log.info(
            "recording %s: queued composites handed over (%d built, %d failed)", rid, len(files), len(errors)
        )

    def _results(self, ticket: QueuedComposites, states: dict[int, str]) -> tuple[list[str], list[str]]:
        """(worker thread) The files the workers built (in the recording folder) and the errors."""
        folder = ticket.info.folder
        files: list[str] = []
        errors: list[str] = []
        for output in ticket.outputs:
            job = ticket.jobs[output]
            try:
                name = str(options_for(self.settings, folder, output).out.name)  # type: ignore[union-attr]
            except CompositeError:
                name = f"composite-{output}"
            result = self._result(ticket.recording_id, job)
            state = states.get(job, "gone")
            if state == "succeeded" and _place(folder, name, result):
                files.append(name)
            elif result is not None and result.error:
                errors.append(f"{name}: {result.error}")
            else:
                errors.append(f"{name}: job {job} {state} in the queue (see the worker's log)")
        return files, errors

    def _result(self, recording_id: str, job: int) -> CompositeResult | None:
        if self.data_dir is None:
            return None
        try:
            return CompositeResult.model_validate_json(
                result_path(self.data_dir, recording_id, job).read_bytes()
            )
        except (OSError, ValueError, ValidationError):
            return None


def listed(folder: Path, files: list[str]) -> bool:
    """(blocking) Whether the recording's manifest (a revision the archive made) lists every file."""
    try:
        manifest = Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
    except (OSError, ValueError):
        return False
    return set(files) <= {o.name for o in manifest.objects}


def _place(folder: Path, name: str, result: CompositeResult | None) -> bool:
    """(blocking) Give the composite an attempt staged its real name (the recorder alone does, once); what
    other attempts staged is removed. Whether the recording folder has it."""
    staged = result.staged if result is not None and result.file == name else None
    if staged is not None and staged.startswith(f".{name}.") and staged.endswith(".tmp"):
        with contextlib.suppress(FileNotFoundError, UnsafeNameError):  # moved before a restart
            os.replace(child(folder, staged), folder / name)
    for stray in folder.glob(f".{name}.*.tmp"):
        stray.unlink(missing_ok=True)
    return (folder / name).is_file()
