"""Exports through the job queue (queue `exports`, priority 10: after composites and transcripts).

An API node of a fleet creates the export job in the catalog (its recordings listed, as in one process)
and queues one queue job carrying only the export's id (`ExportDispatch`). Any worker takes it and runs it
with its own `ExportRunner` (`ExportWorker`): the catalog, the store and the signing key from its own
settings (`archive.*`: store credentials, `archive.signing`, the playback identity for `decrypt`), no
webhooks. Its progress is in the catalog (GET /v1/exports/{id} on any API node); each bundle is written
under a hidden name of its attempt in the shared `exports/` folder and renamed into place; a worker
killed mid-export leaves its queue job stalled, another worker takes it and goes on at the first
recording not done. The job's end is announced by an API node (recorder/lifecycle/exports.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING

import procrastinate
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from procrastinate.exceptions import AlreadyEnqueued

from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.lifecycle.exports import ExportRunner
from recorder.manifest.signing import load_signing_key

if TYPE_CHECKING:
    from recorder.archive.archive import Archive
    from recorder.service.settings import ServiceSettings

log = logging.getLogger(__name__)

EXPORT_TASK = "callvault:export"
EXPORT_ID = re.compile(r"exp-[0-9a-f]{12}")
"""An export job's id (recorder/lifecycle/exports.py new_id): checked before it names a folder."""


def _lock(job_id: str) -> str:
    return f"export:{job_id}"


class ExportDispatch:
    """An API node's side: queue an export, find the exports the queue lost."""

    def __init__(self, app: procrastinate.App) -> None:
        self.app = app

    async def defer(self, job_id: str) -> None:
        """Queue the export (once: a second queueing of one still waiting is ignored; two of one export
        never run at once)."""
        if EXPORT_ID.fullmatch(job_id) is None:
            raise ValueError(f"not an export job id: {job_id!r}")
        task = self.app.tasks[EXPORT_TASK].configure(lock=_lock(job_id), queueing_lock=_lock(job_id))
        try:
            await task.defer_async(job_id=job_id)
        except AlreadyEnqueued:
            log.debug("export %s: already queued", job_id)

    async def lost(self, job_ids: list[str]) -> dict[str, int]:
        rows = await self.app.connector.execute_query_all_async(
            "SELECT args->>'job_id' AS job_id, COUNT(*) AS jobs,"
            " COUNT(*) FILTER (WHERE status IN ('todo', 'doing')) AS live FROM procrastinate_jobs"
            " WHERE task_name = %(task)s AND args->>'job_id' = ANY(%(ids)s) GROUP BY 1",
            task=EXPORT_TASK,
            ids=list(job_ids),
        )
        had = {str(r["job_id"]): (int(r["jobs"]), int(r["live"])) for r in rows}
        return {j: had.get(j, (0, 0))[0] for j in job_ids if had.get(j, (0, 0))[1] == 0}


def open_worker_catalog(settings: ServiceSettings) -> tuple[Database, Catalog, AuditLog, Archive | None]:
    """(blocking) A worker's own catalog connection (closed by the caller), its catalog and audit log, and
    its archive, not started: only its store, signing key and playback identity (None without one)."""
    from recorder.archive.archive import Archive  # noqa: PLC0415 (the archive imports the API)

    api = settings.api
    db = Database(api.catalog_location(settings.data_dir))
    archive = Archive(settings.archive, settings.data_dir) if settings.archive is not None else None
    return db, Catalog(db, api.retention_days, api.search_count_limit), AuditLog(db), archive


class ExportWorker:
    """A worker node's export runner, opened on its first export job (a catalog connection of its own)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self._runner: ExportRunner | None = None
        self._db: Database | None = None
        self._opening = asyncio.Lock()

    async def runner(self) -> ExportRunner:
        async with self._opening:
            if self._runner is None:
                self._runner = await asyncio.to_thread(self._open)
            return self._runner

    def _open(self) -> ExportRunner:
        s = self.settings
        db, catalog, audit, archive = open_worker_catalog(s)
        self._db = db

        def key() -> Ed25519PrivateKey:
            if archive is None:
                raise RuntimeError(
                    "this worker node cannot sign export bundles: it has no archive settings (the store and"
                    " archive.signing); give exporting workers the archive's settings and secrets"
                )
            # the fleet's key only: a worker never makes one of its own (nobody would publish it)
            return load_signing_key(
                archive.settings.signing.model_copy(update={"generate_if_missing": False})
            )

        runner = ExportRunner(
            s.lifecycle,
            s.data_dir,
            db,
            catalog,
            audit,
            lambda: StorageAccess.of([archive]) if archive is not None else None,
            key,
            lambda: None,  # no webhooks on a worker: an API node announces the job's end
        )
        runner.announces = False
        return runner

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


async def export(job_context: procrastinate.JobContext, job_id: str) -> None:
    """Run (or go on with) one export job; its state, bundles and end are in the catalog."""
    from recorder.jobs.queue import _context  # noqa: PLC0415 (queue.py registers this task)

    ctx = _context(job_context)
    if EXPORT_ID.fullmatch(job_id) is None:
        raise ValueError(f"not an export job id: {job_id!r}")
    if ctx.exports is None:
        raise RuntimeError("this worker node runs no exports")
    job = job_context.job
    runner = await ctx.exports.runner()
    await runner.run_attempt(job_id, f"{job.id}.{job.attempts}.{os.getpid()}")
