"""A `callvault serve` node's part in the job queue of a PostgreSQL catalog (service.roles).

- recorder: a finished recording's composites are queued (recorder/jobs/sink.py), not built here; once
  the workers are done, the recorder hands what they built to its own archive (manifest revision,
  encryption, upload, composite.finished), holding the recording's folder until then;
- api: the backlog per queue is a metric (callvault_jobs_<queue>_pending, and callvault_jobs_pending for all
  of them) for the chart's autoscaler; exports created here are queued (recorder/jobs/exports.py), and
  this node announces those the workers ended; reports are queued (recorder/jobs/reports.py) when the node
  has no worker role; lifecycle passes run one at a time across the fleet (none here when
  `lifecycle.run_on = "workers"` and the node has no worker role);
- worker: takes jobs from every queue, highest priority first (recorder/jobs/queue.py): reports,
  composites, transcripts, exports; without the api role and with `lifecycle.run_on = "workers"`, runs
  the lifecycle passes (recorder/jobs/lifecycle.py).

On the embedded SQLite catalog, and on a node with all three roles (the default), there is no queue:
`JobNode.open` returns None and the service builds composites in-process, handing them to its archive
the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from recorder.errors import MissingExtraError
from recorder.jobs.settings import ALL_ROLES, Role

if TYPE_CHECKING:  # procrastinate is the `postgres` extra: imported only by a node that uses the queue
    import procrastinate

    from recorder.api.context import ApiContext
    from recorder.api.db import Database
    from recorder.archive.archive import Archive
    from recorder.jobs.queue import WorkerContext
    from recorder.jobs.sink import CompositeQueue
    from recorder.lifecycle.service import Lifecycle
    from recorder.service.manager import RecordingManager
    from recorder.service.settings import ServiceSettings
    from recorder.transcripts.service import Transcriber

log = logging.getLogger(__name__)


class JobNode:
    def __init__(self, app: procrastinate.App, settings: ServiceSettings) -> None:
        from recorder.jobs.queue import Backlog  # noqa: PLC0415  (the postgres extra)

        self.app = app
        self.settings = settings
        self.roles = set(settings.roles)
        self.backlog = Backlog(app)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.composites: CompositeQueue | None = None
        self._context: WorkerContext | None = None
        self._lifecycle: tuple[Lifecycle, Database] | None = None
        """The recorder's queued composites (None on a node without the recorder role)."""

    @classmethod
    async def open(cls, settings: ServiceSettings) -> JobNode | None:
        location = settings.api.catalog_location(settings.data_dir)
        if location.dialect != "postgresql" or location.conninfo is None:
            return None
        if set(settings.roles) >= set(ALL_ROLES):  # one node does it all: composites in-process, through
            return None  # its archive (manifest revision, upload, composite.finished), as on SQLite
        try:
            from recorder.jobs.queue import ensure_schema, make_app  # noqa: PLC0415  (the postgres extra)
        except ImportError as exc:
            raise MissingExtraError(
                f"roles {sorted(settings.roles)} on PostgreSQL need the job queue: "
                f"pip install 'callvault[postgres]' ({exc})"
            ) from exc
        await ensure_schema(location.conninfo)
        app = make_app(location.conninfo)
        await app.open_async()
        return cls(app, settings)

    def attach(
        self,
        manager: RecordingManager,
        counters: dict[str, Callable[[], dict[str, int]]],
        archive: Archive | None = None,
    ) -> None:
        """Queue the composites of the recordings this node finishes (recorder role), handing them to
        `archive` once built; register before the archive among the sinks (the hold must exist first)."""
        if Role.RECORDER in self.roles:
            from recorder.jobs.sink import TICKETS_DIR, CompositeQueue  # noqa: PLC0415  (the postgres extra)

            sink = CompositeQueue(
                self.app,
                self.settings.composite,
                data_dir=self.settings.data_dir,
                tickets_dir=archive.settings.spool.dir / TICKETS_DIR if archive is not None else None,
                publish=archive.add_composites if archive is not None else None,
            )
            manager.sinks.append(sink)
            counters["composite_queue"] = sink.stats
            self.composites = sink
        if Role.API in self.roles:
            counters["jobs"] = self.backlog.values

    def attach_transcripts(self, transcriber: Transcriber) -> None:
        """A recorder's transcripts (and their redactions) done by the workers (the queue `transcripts`);
        the recorder publishes them (manifest revision, upload, transcript.ready) as in one process."""
        if Role.RECORDER in self.roles:
            from recorder.jobs.transcripts import QueuedTranscripts  # noqa: PLC0415  (the postgres extra)

            transcriber.workers = QueuedTranscripts(
                self.app,
                manifest_first=transcriber.archive is not None,
                recordings=self.settings.data_dir / "recordings",
                local=transcriber.workers,
            )

    def attach_exports(self, lifecycle: Lifecycle | None) -> None:
        """(api role, before the API starts) Exports go to the workers; this node announces their end;
        it runs no pass when the workers run them."""
        if lifecycle is not None and Role.API in self.roles:
            from recorder.jobs.exports import ExportDispatch  # noqa: PLC0415  (the postgres extra)

            lifecycle.follow_queue(ExportDispatch(self.app), self.settings.fleet.node())
            lifecycle.passes = not self._passes_on_workers or Role.WORKER in self.roles

    @property
    def _passes_on_workers(self) -> bool:
        return self.settings.lifecycle.enabled and self.settings.lifecycle.run_on == "workers"

    def attach_reports(self, api: ApiContext) -> None:
        """(api role without the worker role) Reports are built by the workers; the GET waits for them."""
        if Role.API in self.roles and Role.WORKER not in self.roles:
            from recorder.jobs.reports import ReportDispatch  # noqa: PLC0415  (the postgres extra)

            api.reports = ReportDispatch(
                self.app, self.settings.data_dir / "reports", self.settings.jobs.report_wait_seconds
            )

    def holding(self, recording_id: str) -> bool:
        """Whether composites of the recording are queued and not handed to the archive yet."""
        return self.composites is not None and self.composites.holding(recording_id)

    async def load(self) -> None:
        """Hold the folders of recordings whose queued composites an earlier run left (before the archive
        starts)."""
        if self.composites is not None:
            await self.composites.load()

    def start(self, stop: asyncio.Event) -> None:
        if self.composites is not None:
            self.composites.start()
        if Role.API in self.roles:
            self._tasks.append(asyncio.create_task(self.backlog.follow(), name="job backlog"))
        if Role.WORKER in self.roles:
            from recorder.jobs.exports import ExportWorker  # noqa: PLC0415  (the postgres extra)
            from recorder.jobs.queue import WorkerContext, run_worker  # noqa: PLC0415  (the postgres extra)

            context = WorkerContext(
                data_dir=self.settings.data_dir,
                composite=self.settings.composite,
                transcripts=self.settings.transcripts,
                exports=ExportWorker(self.settings),
            )
            self._context = context
            work = run_worker(self.app, context, self.settings.jobs, self._stop)
            self._tasks.append(asyncio.create_task(work, name="job worker"))
            if self._passes_on_workers and Role.API not in self.roles:
                self._tasks.append(asyncio.create_task(self._run_lifecycle(), name="lifecycle passes"))

    async def _run_lifecycle(self) -> None:
        """(a worker without the api role) The fleet's lifecycle passes (recorder/jobs/lifecycle.py)."""
        from recorder.jobs.lifecycle import open_worker_lifecycle  # noqa: PLC0415  (the postgres extra)

        try:
            self._lifecycle = await asyncio.to_thread(open_worker_lifecycle, self.settings, self.app)
            await self._lifecycle[0].start()
        except Exception:
            log.exception("lifecycle passes: not started on this worker")

    async def close(self) -> None:
        if self.composites is not None:
            await self.composites.stop()
        self._stop.set()
        for task in self._tasks:
            if task.get_name() == "job backlog":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lifecycle is not None:  # after its start (the task above) ended
            lifecycle, db = self._lifecycle
            await lifecycle.stop()
            db.close()
        if self._context is not None:
            for pool in self._context.transcribers.values():
                await asyncio.to_thread(pool.shutdown)
            await asyncio.to_thread(self._context.exports.close)
        await self.app.close_async()
