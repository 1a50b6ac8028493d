"""Export jobs: a filter (the search's), what to include, a destination; one evidence bundle per recording
(recorder/lifecycle/bundle.py) and a signed index of the export (export.json + export.json.sig).

A job's state is in the catalog (`export_jobs`, one `export_items` row per recording): created `queued`
with its recordings listed; a worker (at most `lifecycle.export_workers` jobs at once) writes each
recording's bundle, uploads it when the destination is a customer's bucket, and marks the item done. A
restart resumes `queued` and `running` jobs at the first item not done. Schedules (cron, UTC) create jobs;
a schedule that fires twice creates two jobs, each over its own window.

On a fleet (a PostgreSQL catalog with split roles) the API node that creates a job queues it (`queue`,
recorder/jobs/exports.py) and any worker runs it (`run_attempt`): each bundle is written under a hidden
name of its attempt and renamed into place, a worker killed mid-job leaves its job to another one, which
goes on at the first item not done. A worker has no webhooks: it leaves the job's end `announce: pending`
in its result, and an API node claims it (a conditional UPDATE: once across the fleet) and announces it
(`announce_ended`). A schedule's run is claimed the same way (its `next_run` moved by a conditional UPDATE):
two nodes firing the same schedule at once create one job.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol

from cronsim import CronSim, CronSimError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from recorder.api.audit import AuditEntry, AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.crypto.age import CryptoError, decrypt_chunks
from recorder.lifecycle.bundle import (
    RECORDING_DIR,
    BundleResult,
    DecryptedFile,
    Opener,
    canonical,
    sign,
    write_bundle,
)
from recorder.lifecycle.models import (
    BundleOut,
    ExportFilter,
    ExportJobOut,
    ExportRequest,
    Include,
    JobState,
    ScheduleOut,
    ScheduleRequest,
)
from recorder.lifecycle.rules import RECORD, ObjectKind, kind_of
from recorder.lifecycle.settings import LifecycleSettings
from recorder.manifest.model import MANIFEST_NAME, Manifest, StoredObject
from recorder.storage.base import StorageError
from recorder.storage.s3 import S3Store
from recorder.webhooks.events import ExportFailed, ExportFinished, WebhookEvent

log = logging.getLogger(__name__)

INDEX_NAME = "export.json"
SEARCH_PAGE = 200
Publish = Callable[[WebhookEvent, str], Awaitable[object]]
ANNOUNCE = "announce"
"""Key of an export job's `result` on a fleet: 'pending' (ended on a worker, not yet announced), then the
name of the API node that announced it."""
PENDING = "pending"
LOST_AFTER = 10.0
"""A job `queued` or `running` in the catalog for this many seconds without a job in the queue is queued
again (its node stopped between the catalog and the queue, or the worker's end never reached the catalog)."""
QUEUEINGS = 3
"""Times an export is queued at most: after that many queue jobs ended without ending it, it fails."""


class ExportQueue(Protocol):
    """The job queue of a fleet, as the export runner of an API node uses it (recorder/jobs/exports.py)."""

    async def defer(self, job_id: str) -> None: ...

    async def lost(self, job_ids: list[str]) -> dict[str, int]:
        """Those of `job_ids` with no job to do or being done in the queue -> how many queue jobs each
        had."""
        ...


INCLUDED_KINDS = {
    Include.ORIGINALS: ObjectKind.ORIGINALS,
    Include.COMPOSITE: ObjectKind.COMPOSITE,
    Include.TRANSCRIPTS: ObjectKind.TRANSCRIPT,
    Include.FORENSIC: ObjectKind.FORENSIC,
}


class ExportError(Exception):
    """A job cannot run (its destination is not configured, too many recordings...)."""


class GoneError(ExportError):
    """A recording the job listed is gone (deleted since): it is skipped, the job goes on."""


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def next_run(cron: str, after: datetime) -> datetime:
    """The first time after `after` the cron expression (UTC) fires; ValueError for a bad expression."""
    try:
        return next(CronSim(cron, after.astimezone(UTC).replace(tzinfo=None))).replace(tzinfo=UTC)
    except (CronSimError, StopIteration) as exc:
        raise ValueError(f"cron: {exc}") from exc


def window(f: ExportFilter, run_at: datetime) -> ExportFilter:
    """A schedule's filter for one run: `previous_days` becomes an absolute time range."""
    if f.previous_days is None:
        return f
    day = run_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return f.model_copy(
        update={
            "started_after": day - timedelta(days=f.previous_days),
            "started_before": day,
            "previous_days": None,
        }
    )


class ExportRunner:
    def __init__(
        self,
        settings: LifecycleSettings,
        data_dir: Path,
        db: Database,
        catalog: Catalog,
        audit: AuditLog,
        storage: Callable[[], StorageAccess | None],
        key: Callable[[], Ed25519PrivateKey],
        publish: Callable[[], Publish | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.dir = settings.resolved_export_dir(data_dir)
        self.db = db
        self.catalog = catalog
        self.audit = audit
        self.storage = storage
        self.key = key
        self.publish = publish
        self.clock = clock
        self._slots = asyncio.Semaphore(settings.export_workers)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self.queue: ExportQueue | None = None
        """Set on a fleet's API node: jobs go to the workers through the job queue."""
        self.announces = True
        """False on a fleet's worker (no webhooks there): a job's end is left for an API node to announce."""

    # -- jobs -----------------------------------------------------------------------------------------

    async def create(self, request: ExportRequest, by: str, schedule_id: str | None = None) -> ExportJobOut:
        """List the job's recordings and queue it (ExportError when it cannot run)."""
        dest = request.destination
        if dest.type == "s3" and dest.name not in self.settings.export_destinations:
            raise ExportError(
                f"no export destination {dest.name!r} is configured (lifecycle.export_destinations)"
            )
        if request.decrypt:
            access = self.storage()
            if access is None or not access.playback:
                raise ExportError(
                    "decrypt: the service holds no playback identity"
                    " (archive.encryption.playback_identity*), so it cannot decrypt"
                )
        job_id = new_id("exp")
        now = self.clock()
        flt = window(request.filter, datetime.fromtimestamp(now, UTC))
        limit = self.settings.export_max_recordings
        spec = request.model_copy(update={"filter": flt}).model_dump_json()

        def insert() -> int:
            ids = list(self._matching(flt, limit + 1))
            if len(ids) > limit:
                raise ExportError(
                    f"the filter matches more than {limit} recordings (lifecycle.export_max_recordings)"
                )
            c = self.db.connection
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT INTO export_jobs (job_id, spec, state, created_at, created_by, schedule_id,"
                    " updated_at, total) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (job_id, spec, now, by, schedule_id, now, len(ids)),
                )
                c.executemany(
                    "INSERT INTO export_items (job_id, recording_id, position, state)"
                    " VALUES (?, ?, ?, 'pending')",
                    [(job_id, rid, n) for n, rid in enumerate(ids)],
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            return len(ids)

        await self.db.run(insert)
        await self._launch(job_id)
        found = await self.get(job_id)
        assert found is not None
        return found

    def _matching(self, flt: ExportFilter, limit: int) -> Iterator[str]:
        """(catalog thread) Finished recordings matching the filter, oldest first."""
        offset, seen = 0, 0
        ids: list[str] = []
        while seen < limit:
            page = self.catalog.search(flt.query(SEARCH_PAGE, offset))
            for r in page.items:
                if r.status.value in ("finished", "failed"):
                    ids.append(r.recording_id)
            seen += len(page.items)
            if page.next_offset is None:
                break
            offset = page.next_offset
        yield from reversed(ids[:limit])

    async def get(self, job_id: str) -> ExportJobOut | None:
        return await self.db.run(lambda: self._job(job_id))

    async def jobs(self, limit: int = 100) -> list[ExportJobOut]:
        def read() -> list[ExportJobOut]:
            rows = self.db.connection.execute(
                "SELECT job_id FROM export_jobs ORDER BY created_at DESC, job_id LIMIT ?", (limit,)
            ).fetchall()
            return [j for r in rows if (j := self._job(r["job_id"])) is not None]

        return await self.db.run(read)

    def _job(self, job_id: str) -> ExportJobOut | None:
        c = self.db.connection
        row = c.execute("SELECT * FROM export_jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        request = ExportRequest.model_validate_json(row["spec"])
        bundles = [
            BundleOut(**json.loads(i["files"]))
            for i in c.execute(
                "SELECT files FROM export_items WHERE job_id = ? AND state = 'done' AND files IS NOT NULL"
                " ORDER BY position",
                (job_id,),
            )
        ]
        skipped = [
            i["recording_id"]
            for i in c.execute(
                "SELECT recording_id FROM export_items WHERE job_id = ? AND state = 'skipped'"
                " ORDER BY position",
                (job_id,),
            )
        ]
        result = json.loads(row["result"]) if row["result"] else {}
        return ExportJobOut(
            job_id=job_id,
            state=JobState(row["state"]),
            request=request,
            created_at=row["created_at"],
            created_by=row["created_by"],
            schedule_id=row["schedule_id"],
            total=row["total"],
            done=row["done"],
            bundles=bundles,
            skipped=skipped,
            index_sha256=result.get("index_sha256"),
            error=row["error"],
        )

    def bundle_path(self, job_id: str, recording_id: str) -> Path | None:
        path = self.dir / job_id / f"{recording_id}.zip"
        return path if path.is_file() else None

    # -- running --------------------------------------------------------------------------------------

    async def _launch(self, job_id: str) -> None:
        if self.queue is None:
            self._start(job_id)
            return
        try:
            await self.queue.defer(job_id)
        except Exception as exc:  # the catalog has it: queued again by requeue_lost
            log.warning("export %s: not queued yet (%s); queued again shortly", job_id, exc)

    async def resume(self) -> int:
        """At start-up: run again every job a stop or crash interrupted (on a fleet the queue keeps them)."""
        if self.queue is not None:
            return 0
        rows = await self.db.run(
            lambda: self.db.connection.execute(
                "SELECT job_id FROM export_jobs WHERE state IN ('queued', 'running') ORDER BY created_at"
            ).fetchall()
        )
        for r in rows:
            self._start(r["job_id"])
        return len(rows)

    def _start(self, job_id: str) -> None:
        if job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id), name=f"export {job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(job_id, None))

    async def wait(self, job_id: str) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        async with self._slots:
            await self.run_attempt(job_id)

    async def run_attempt(self, job_id: str, attempt: str | None = None) -> None:
        """Run the job (from its first item not done); its failure is the job's (state, audit, webhook).
        `attempt` (a queued job's attempt) names the hidden files this run writes."""
        try:
            await self._work(job_id, attempt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("export %s failed", job_id)
            await self._fail(job_id, f"{type(exc).__name__}: {exc}"[:500])

    async def _work(self, job_id: str, attempt: str | None = None) -> None:
        job = await self.get(job_id)
        if job is None or job.state in (JobState.FINISHED, JobState.FAILED):
            return
        await self._set_state(job_id, JobState.RUNNING)
        request = job.request
        target = self._destination(request)
        out_dir = self.dir / job_id
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        pending = await self.db.run(
            lambda: [
                r["recording_id"]
                for r in self.db.connection.execute(
                    "SELECT recording_id FROM export_items WHERE job_id = ? AND state = 'pending'"
                    " ORDER BY position",
                    (job_id,),
                )
            ]
        )
        key = await asyncio.to_thread(self.key)
        for rid in pending:
            try:
                bundle = await self._bundle(job, rid, out_dir, key, attempt)
            except GoneError as exc:  # deleted (retention) since the job listed it: skipped, said so
                await self._exec(
                    "UPDATE export_items SET state = 'skipped', files = ? WHERE job_id = ?"
                    " AND recording_id = ?",
                    (json.dumps({"skipped": str(exc)}), job_id, rid),
                )
                continue
            location = f"/v1/exports/{job_id}/bundles/{rid}"
            if target is not None:
                store, prefix = target
                object_key = f"{prefix}{job_id}/{bundle.name}"
                await asyncio.to_thread(
                    store.put_file,
                    object_key,
                    out_dir / bundle.name,
                    "application/zip",
                    {"recording-id": rid},
                )
                await asyncio.to_thread((out_dir / bundle.name).unlink, True)
                location = object_key
            out = BundleOut(
                recording_id=rid, name=bundle.name, size=bundle.size, sha256=bundle.sha256, location=location
            )
            await self.db.run(lambda r=rid, o=out: self._item_done(job_id, r, o))  # type: ignore[misc]
        index_sha = await self._index(job_id, out_dir, key, target, attempt)
        final = await self.get(job_id)
        exported = final.done if final is not None else 0
        skipped = len(final.skipped) if final is not None else 0
        finished = self.clock()
        result = {"index_sha256": index_sha} | ({} if self.announces else {ANNOUNCE: PENDING})

        def finish() -> bool:
            c = self.db.connection
            ended = c.execute(  # once: an attempt that ends after another one (a stalled worker) does not
                "UPDATE export_jobs SET state = 'finished', updated_at = ?, result = ? WHERE job_id = ?"
                " AND state NOT IN ('finished', 'failed')",
                (finished, json.dumps(result), job_id),
            ).rowcount
            if ended != 1:
                return False
            self.audit.append_now(
                "system",
                None,
                "export.finished",
                job_id,
                "ok",
                None,
                {"recordings": exported, "skipped": skipped, "destination": request.destination.label()},
            )
            return True

        if not await self.db.run(finish):
            return
        ended = await self.get(job_id)
        if self.announces and ended is not None:
            await self._announce(ended, finished)
        log.info("export %s: %d recordings, %d skipped, finished", job_id, exported, skipped)

    def _destination(self, request: ExportRequest) -> tuple[S3Store, str] | None:
        dest = request.destination
        if dest.type != "s3":
            return None
        settings = self.settings.export_destinations.get(dest.name or "")
        if settings is None:
            raise ExportError(f"export destination {dest.name!r} is no longer configured")
        prefix = dest.prefix if not dest.prefix or dest.prefix.endswith("/") else dest.prefix + "/"
        return S3Store(settings), prefix

    def _item_done(self, job_id: str, rid: str, out: BundleOut) -> None:
        c = self.db.connection
        c.execute(
            "UPDATE export_items SET state = 'done', files = ? WHERE job_id = ? AND recording_id = ?",
            (out.model_dump_json(), job_id, rid),
        )
        c.execute(
            "UPDATE export_jobs SET done = (SELECT COUNT(*) FROM export_items WHERE job_id = ?"
            " AND state = 'done'), updated_at = ? WHERE job_id = ?",
            (job_id, self.clock(), job_id),
        )

    async def _bundle(
        self, job: ExportJobOut, rid: str, out_dir: Path, key: Ed25519PrivateKey, attempt: str | None
    ) -> BundleResult:
        """The recording's bundle, its index dated with the job's creation: whoever builds it, and however
        often (a stalled worker's attempt beside its retry), the same objects and audit entries make the
        same bytes."""
        job_id, request = job.job_id, job.request
        detail = await self.db.run(lambda: self.catalog.get(rid))
        folder = await self.db.run(lambda: self.catalog.folder(rid))
        if detail is None or folder is None:
            raise GoneError(f"recording {rid} is no longer in the catalog")
        if detail.status.value == "deleted":
            raise GoneError(f"recording {rid} was deleted before it could be exported")
        audit: list[AuditEntry] | None = None
        if Include.AUDIT in request.include:
            audit = await self.db.run(lambda: audit_excerpt(self.db.connection, rid))
        access = self.storage()
        include = request.include

        decrypt = request.decrypt
        decrypted: list[DecryptedFile] = []

        def build() -> BundleResult:
            objects, excluded = _objects(access, rid, detail.started_at, detail.room_id, folder, include)
            if decrypt:
                objects = _decrypting(access, objects, decrypted)
            return write_bundle(
                out_dir / f"{rid}.zip",
                recording_id=rid,
                room_id=detail.room_id,
                objects=objects,
                excluded=excluded,
                audit=audit,
                key=key,
                export_job=job_id,
                now=job.created_at,
                decrypted=decrypted,
                attempt=attempt,
            )

        result = await asyncio.to_thread(build)
        if decrypted:  # plaintext left the service: one audit entry per recording, naming the files
            await self.audit.append(
                "system",
                None,
                "export.decrypted",
                rid,
                "ok",
                None,
                {
                    "job_id": job_id,
                    "files": len(decrypted),
                    "names": ",".join(d.name for d in decrypted)[:500],
                },
            )
        return result

    async def _index(
        self,
        job_id: str,
        out_dir: Path,
        key: Ed25519PrivateKey,
        target: tuple[S3Store, str] | None,
        attempt: str | None,
    ) -> str:
        job = await self.get(job_id)
        assert job is not None
        index = {
            "format": "callvault-export/1",
            "job_id": job_id,
            "created_at": job.created_at.isoformat(),
            "created_by": job.created_by,
            "request": job.request.model_dump(mode="json"),
            "bundles": [b.model_dump(mode="json", exclude={"location"}) for b in job.bundles],
            "skipped": job.skipped,
        }
        data = canonical(index)

        def write() -> str:
            for name, body in ((INDEX_NAME, data), (f"{INDEX_NAME}.sig", sign(key, data))):
                tmp = out_dir / f".{name}.{attempt or 'local'}.tmp"  # the whole file or none under its name
                tmp.write_bytes(body)
                tmp.replace(out_dir / name)
            if target is not None:
                store, prefix = target
                store.put_bytes(f"{prefix}{job_id}/{INDEX_NAME}", data, "application/json")
                store.put_bytes(f"{prefix}{job_id}/{INDEX_NAME}.sig", sign(key, data), "text/plain")
            return hashlib.sha256(data).hexdigest()

        return await asyncio.to_thread(write)

    async def _set_state(self, job_id: str, state: JobState) -> None:
        now = self.clock()
        await self.db.run(
            lambda: self.db.connection.execute(
                "UPDATE export_jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                (state.value, now, job_id),
            )
        )

    async def _fail(self, job_id: str, error: str) -> None:
        now = self.clock()
        result = None if self.announces else json.dumps({ANNOUNCE: PENDING})

        def write() -> bool:
            c = self.db.connection
            ended = c.execute(
                "UPDATE export_jobs SET state = 'failed', error = ?, updated_at = ?,"
                " result = COALESCE(?, result) WHERE job_id = ? AND state NOT IN ('finished', 'failed')",
                (error, now, result, job_id),
            ).rowcount
            if ended == 1:
                self.audit.append_now(
                    "system", None, "export.failed", job_id, "failed", None, {"error": error}
                )
            return ended == 1

        if await self.db.run(write) and self.announces:
            job = await self.get(job_id)
            if job is not None:
                await self._announce(job, now)

    async def _announce(self, job: ExportJobOut, at: float) -> None:
        """export.finished or export.failed of an ended job, under a fixed webhook id."""
        when = datetime.fromtimestamp(at, UTC)
        data: ExportFinished | ExportFailed
        if job.state is JobState.FINISHED:
            data = ExportFinished(
                job_id=job.job_id,
                schedule_id=job.schedule_id,
                finished_at=when,
                recordings=job.done,
                destination=job.request.destination.label(),
                index_sha256=job.index_sha256 or "",
            )
        else:
            data = ExportFailed(
                job_id=job.job_id, schedule_id=job.schedule_id, failed_at=when, error=job.error or ""
            )
        publish = self.publish()
        if publish is not None:
            try:
                await publish(WebhookEvent.of(data), f"export-{job.job_id}-{job.state.value}")
            except Exception:
                log.exception("export %s: the webhook could not be queued", job.job_id)

    # -- a fleet's API node: what the workers ended, jobs the queue lost ----------------------------------

    async def announce_ended(self, node: str) -> int:
        """Announce the jobs workers ended (finished or failed) and nobody announced yet: each is claimed
        first (its result's `announce` turned from 'pending' to this node's name by a conditional UPDATE,
        which one node wins), then published to this node's webhooks. Only on a node with webhooks."""
        if self.publish() is None:
            return 0
        pattern = f'%"{ANNOUNCE}": "{PENDING}"%'

        def claim() -> list[tuple[str, float]]:
            c = self.db.connection
            rows = c.execute(
                "SELECT job_id, result, updated_at FROM export_jobs WHERE state IN ('finished', 'failed')"
                " AND result LIKE ?",
                (pattern,),
            ).fetchall()
            won = []
            for r in rows:
                claimed = json.loads(r["result"]) | {ANNOUNCE: node}
                n = c.execute(
                    "UPDATE export_jobs SET result = ? WHERE job_id = ? AND result = ?",
                    (json.dumps(claimed), r["job_id"], r["result"]),
                ).rowcount
                if n == 1:
                    won.append((r["job_id"], r["updated_at"]))
            return won

        claimed = await self.db.run(claim)
        for job_id, at in claimed:
            job = await self.get(job_id)
            if job is not None:
                await self._announce(job, at)
        return len(claimed)

    async def requeue_lost(self) -> list[str]:
        """Queue again the jobs the catalog has as queued or running that have no job in the queue."""
        if self.queue is None:
            return []
        before = self.clock() - LOST_AFTER
        rows = await self.db.run(
            lambda: self.db.connection.execute(
                "SELECT job_id FROM export_jobs WHERE state IN ('queued', 'running') AND updated_at < ?",
                (before,),
            ).fetchall()
        )
        lost = await self.queue.lost([r["job_id"] for r in rows]) if rows else {}
        for job_id, times in lost.items():
            if times >= QUEUEINGS:
                await self._fail(job_id, f"{times} jobs of the job queue ended without ending the export")
                continue
            log.warning("export %s: no job in the queue; queued again", job_id)
            await self.queue.defer(job_id)
        return list(lost)

    async def expire(self) -> int:
        """Remove downloadable bundles older than `export_keep_days`."""
        cutoff = self.clock() - self.settings.export_keep_days * 86400

        def old() -> list[str]:
            return [
                r["job_id"]
                for r in self.db.connection.execute(
                    "SELECT job_id FROM export_jobs WHERE state IN ('finished', 'failed') AND updated_at < ?",
                    (cutoff,),
                )
            ]

        removed = 0
        for job_id in await self.db.run(old):
            folder = self.dir / job_id
            if folder.is_dir():
                await asyncio.to_thread(shutil.rmtree, folder, True)
                removed += 1
        return removed

    async def _exec(self, sql: str, args: tuple[object, ...]) -> None:
        await self.db.run(lambda: self.db.connection.execute(sql, args))

    # -- schedules ------------------------------------------------------------------------------------

    async def add_schedule(self, request: ScheduleRequest, by: str) -> ScheduleOut:
        now = datetime.fromtimestamp(self.clock(), UTC)
        first = next_run(request.cron, now)  # ValueError for a bad expression
        dest = request.destination
        if dest.type == "s3" and dest.name not in self.settings.export_destinations:
            raise ExportError(
                f"no export destination {dest.name!r} is configured (lifecycle.export_destinations)"
            )
        schedule_id = new_id("sch")
        spec = ExportRequest.model_validate(request.model_dump(exclude={"cron"})).model_dump_json()
        await self.db.run(
            lambda: self.db.connection.execute(
                "INSERT INTO export_schedules (schedule_id, spec, cron, next_run, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (schedule_id, spec, request.cron, first.timestamp(), now.timestamp(), by),
            )
        )
        found = await self.schedules(schedule_id)
        return found[0]

    async def schedules(self, schedule_id: str | None = None) -> list[ScheduleOut]:
        def read() -> list[ScheduleOut]:
            sql, args = "SELECT * FROM export_schedules", ()
            if schedule_id is not None:
                sql, args = sql + " WHERE schedule_id = ?", (schedule_id,)  # type: ignore[assignment]
            return [_schedule(r) for r in self.db.connection.execute(sql + " ORDER BY created_at", args)]

        return await self.db.run(read)

    async def delete_schedule(self, schedule_id: str) -> bool:
        return await self.db.run(
            lambda: (
                self.db.connection.execute(
                    "DELETE FROM export_schedules WHERE schedule_id = ?", (schedule_id,)
                ).rowcount
                > 0
            )
        )

    async def fire_due(self) -> list[str]:
        """Create a job for every schedule due now and move it to its next time; returns the job ids. The
        next time is stored before the job is created: a crash between them skips a run rather than
        running one twice... and the run is in the audit log either way."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        due = await self.db.run(
            lambda: self.db.connection.execute(
                "SELECT * FROM export_schedules WHERE next_run <= ? ORDER BY next_run", (now.timestamp(),)
            ).fetchall()
        )
        jobs = []
        for row in due:
            schedule = _schedule(row)
            following = next_run(schedule.cron, now)
            claim = partial(
                self._claim_run, following.timestamp(), now.timestamp(), schedule.schedule_id, row["next_run"]
            )
            if not await self.db.run(claim):
                continue  # another node of the fleet fired it
            try:
                job = await self.create(
                    schedule.request, f"schedule:{schedule.schedule_id}", schedule.schedule_id
                )
            except (ExportError, StorageError) as exc:
                log.error("export schedule %s: %s", schedule.schedule_id, exc)
                await self.audit.append(
                    "system",
                    None,
                    "export.schedule",
                    schedule.schedule_id,
                    "failed",
                    None,
                    {"error": str(exc)[:300]},
                )
                continue
            jobs.append(job.job_id)
        return jobs

    def _claim_run(self, following: float, now: float, schedule_id: str, was: float) -> bool:
        """(catalog thread) Move the schedule to its next run if it still is where this node read it:
        one node wins a run."""
        return bool(
            self.db.connection.execute(
                "UPDATE export_schedules SET next_run = ?, last_run = ? WHERE schedule_id = ?"
                " AND next_run = ?",
                (following, now, schedule_id, was),
            ).rowcount
            == 1
        )


def _schedule(row: sqlite3.Row) -> ScheduleOut:
    return ScheduleOut(
        schedule_id=row["schedule_id"],
        cron=row["cron"],
        request=ExportRequest.model_validate_json(row["spec"]),
        next_run=row["next_run"],
        last_run=row["last_run"],
        created_by=row["created_by"],
    )


def audit_excerpt(c: sqlite3.Connection, rid: str) -> list[AuditEntry]:
    """(catalog thread) The audit entries about a recording (its id or one of its participants)."""
    rows = c.execute(
        "SELECT * FROM audit WHERE target = ? OR target LIKE ? ESCAPE '\\' ORDER BY seq",
        (rid, rid.replace("_", "\\_").replace("%", "\\%") + "/%"),
    )
    return [
        AuditEntry(
            seq=r["seq"],
            at=r["at"],
            actor=r["actor"],
            role=r["role"],
            action=r["action"],
            target=r["target"],
            outcome=r["outcome"],
            remote=r["remote"],
            detail=json.loads(r["detail"]),
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in rows
    ]


def _objects(
    access: StorageAccess | None,
    rid: str,
    started_at: datetime,
    room: str | None,
    folder: Path,
    include: list[Include],
) -> tuple[list[tuple[str, Opener]], list[str]]:
    """(worker thread) The recording's objects to bundle (stored ones, else the local folder's files) and
    the names left out."""
    kinds = {INCLUDED_KINDS[i] for i in include if i in INCLUDED_KINDS}
    with_records = Include.MANIFESTS in include
    names: dict[str, Opener] = {}
    if access is not None:
        try:
            prefix: str | None = access.prefix(rid, started_at, room)
        except ValueError:
            prefix = None
        if prefix is not None:
            store = access.store
            for o in store.list(prefix):
                names[o.key[len(prefix) :]] = lambda k=o.key: store.iter_chunks(k)  # type: ignore[misc]
    if not names and folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                names[p.relative_to(folder).as_posix()] = lambda p=p: _file_chunks(p)  # type: ignore[misc]
    chosen: list[tuple[str, Opener]] = []
    excluded: list[str] = []
    for name in sorted(names):
        kind = kind_of(name)
        wanted = with_records if kind == RECORD else kind in kinds
        if wanted:
            chosen.append((name, names[name]))
        else:
            excluded.append(name)
    return chosen, excluded


def _decrypting(
    access: StorageAccess | None, objects: list[tuple[str, Opener]], decrypted: list[DecryptedFile]
) -> list[tuple[str, Opener]]:
    """(worker thread) The objects with every encrypted one the signed manifest lists replaced by its
    plaintext (named without '.age'), decrypted with the playback identity as it streams; `decrypted`
    gets one entry per such file. An opener raises CryptoError when the plaintext is not what the manifest
    says (age authenticates every chunk, so this means the manifest and the object disagree)."""
    by_name = dict(objects)
    if access is None or not access.playback or MANIFEST_NAME not in by_name:
        return objects
    try:
        manifest = Manifest.model_validate_json(b"".join(by_name[MANIFEST_NAME]()))
    except ValidationError as exc:
        raise CryptoError(f"{MANIFEST_NAME}: cannot be read to decrypt: {exc.error_count()} errors") from None
    sealed = {o.stored_name: o for o in manifest.objects if o.encryption is not None}
    identities = access.playback
    out: list[tuple[str, Opener]] = []
    for name, opener in objects:
        obj = sealed.get(name)
        if obj is None or obj.plaintext_sha256 is None or obj.plaintext_size is None:
            out.append((name, opener))
            continue
        decrypted.append(
            DecryptedFile(
                name=RECORDING_DIR + obj.name,
                ciphertext_name=name,
                ciphertext_size=obj.size,
                ciphertext_sha256=obj.sha256,
                plaintext_size=obj.plaintext_size,
                plaintext_sha256=obj.plaintext_sha256,
            )
        )
        out.append((obj.name, lambda o=opener, s=obj: _plaintext(o, s, identities)))  # type: ignore[misc]
    return out


def _plaintext(opener: Opener, obj: StoredObject, identities: Sequence[object]) -> Iterator[bytes]:
    h = hashlib.sha256()
    size = 0
    for chunk in decrypt_chunks(opener(), identities, obj.stored_name):
        h.update(chunk)
        size += len(chunk)
        yield chunk
    if h.hexdigest() != obj.plaintext_sha256 or size != obj.plaintext_size:
        raise CryptoError(f"{obj.stored_name}: decrypts to other bytes than the manifest's plaintext_sha256")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            yield chunk
