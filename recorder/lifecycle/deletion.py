"""The deletion scheduler: each pass evaluates recordings that finished since the last one, then deletes
what is due in a bounded batch, resuming first any deletion a crash interrupted.

One recording's deletion:
1. checks that nothing protects it: in progress (never), legal hold in the catalog, or an object that is
   under legal hold or object lock in the store. Then it deletes nothing, says why in the catalog
   (`lifecycle_blocked`, shown by the API) and tries again later (when the lock ends, or after
   `retry_seconds`);
2. writes its intent (the names to delete) to the catalog, then removes each object from the store for
   good (`purge`: every version) and from the local folder, recording each in `deleted_objects`;
3. publishes `recording.deleted` (under a fixed webhook id, so a resumed deletion does not announce twice),
   then, when nothing of the recording is left, turns its catalog entry into a tombstone, with one audit
   entry per deletion (actor `system`, action `recording.retention_delete`).
A crash anywhere leaves the intent in the catalog: the next pass does the same deletion again (removing
what is already gone is not an error).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from recorder.api.audit import AuditLog, DetailValue
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.lifecycle import catalog as lc
from recorder.lifecycle.rules import (
    RECORD,
    DeletionPlan,
    ObjectKind,
    RetentionPolicy,
    due_objects,
    evaluate,
    kind_of,
)
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.base import ObjectNotFoundError, StorageError
from recorder.storage.local import LocalStore
from recorder.webhooks.events import RecordingDeleted, WebhookEvent

log = logging.getLogger(__name__)

EVALUATE_BATCH = 1000
CONCURRENCY = 8
"""Recordings of a batch listed, checked and removed at once (each in a worker thread: the store's calls
block on disk or network)."""
T = TypeVar("T")
Publish = Callable[[WebhookEvent, str], Awaitable[object]]


@dataclass
class PassReport:
    """What one pass did."""

    evaluated: int = 0
    deleted_whole: list[str] = field(default_factory=list)
    deleted_partly: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    blocked: dict[str, str] = field(default_factory=dict)


@dataclass
class _Listing:
    """(worker thread) A recording's objects: stored (name -> key) and local (name -> path)."""

    stored: dict[str, str]
    local: dict[str, Path]
    access: StorageAccess | None
    locked_until: float | None = None

    @property
    def names(self) -> list[str]:
        return sorted({*self.stored, *self.local})


@dataclass
class _Deletion:
    """What one recording loses in this pass."""

    item: lc.DueRecording
    listing: _Listing
    names: list[str]
    whole: bool
    at: float

    @property
    def rules(self) -> list[str]:
        return sorted({r for n in self.names if (r := self.item.plan.rule_of(kind_of(n))) is not None})


class DeletionScheduler:
    def __init__(
        self,
        settings: LifecycleSettings,
        db: Database,
        audit: AuditLog,
        storage: Callable[[], StorageAccess | None],
        recordings_dir: Path,
        is_live: Callable[[str], bool],
        publish: Callable[[], Publish | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.db = db
        self.audit = audit
        self.storage = storage
        self.recordings_dir = recordings_dir
        self.is_live = is_live
        self.publish = publish
        self.clock = clock
        self.policy = settings.policy([])

    async def _sql(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(connection, *args)` on the catalog's worker thread."""
        return await self.db.run(lambda: fn(self.db.connection, *args))

    # -- evaluation -----------------------------------------------------------------------------------

    async def load_rules(self) -> RetentionPolicy:
        rules = await self._sql(lc.load_rules)
        self.policy = self.settings.policy(rules)
        return self.policy

    async def evaluate(self, only_unplanned: bool = True) -> int:
        """Plan recordings (those without a plan, or all of them after a rule changed), in batches."""
        policy, count, after = self.policy, 0, ""
        while True:
            batch = await self._sql(lc.facts_batch, after, EVALUATE_BATCH, only_unplanned)
            if not batch:
                return count
            plans = [(f.recording_id, plan) for f in batch if (plan := evaluate(f, policy)) is not None]
            await self._sql(lc.save_plans, plans)
            count += len(batch)
            after = batch[-1].recording_id
            if only_unplanned and len(batch) < EVALUATE_BATCH:
                return count

    # -- deletion -------------------------------------------------------------------------------------

    async def run_once(self) -> PassReport:
        """One bounded batch. Its durable writes are three transactions whatever its size: the intents
        (before anything is removed), then, once the objects are gone, every deleted object, tombstone
        and audit entry of the batch."""
        report = PassReport(evaluated=await self.evaluate())
        now = self.clock()
        batch = await self._sql(lc.due, now, self.settings.batch_size)
        updates: list[tuple[str, str | None, float | None]] = []
        """(recording id, blocked why or None, next deletion) for recordings nothing is deleted of now."""
        slots = asyncio.Semaphore(CONCURRENCY)

        async def plan(item: lc.DueRecording) -> _Deletion | None:
            async with slots:
                try:
                    return await self._plan(item, now, report, updates)
                except StorageError as exc:
                    self._blocked(item.recording_id, f"store unavailable: {exc}", now, None, report, updates)
                    return None

        live = [item for item in batch if not self.is_live(item.recording_id)]  # open here: never touched
        work = [d for d in await asyncio.gather(*(plan(item) for item in live)) if d is not None]
        fresh = [(d.item.recording_id, d.names, d.whole) for d in work if d.item.intent is None]
        await self._sql(lc.begin_many, fresh, updates)

        async def remove(d: _Deletion) -> _Deletion | None:
            async with slots:
                try:
                    await asyncio.to_thread(self._remove_all, d)
                except StorageError as exc:  # the intent stays: the next pass tries the same deletion again
                    self._blocked(d.item.recording_id, f"store refused: {exc}", now, None, report, [])
                    log.warning("retention: recording %s: deletion interrupted: %s", d.item.recording_id, exc)
                    return None
                await self._announce(d)
                return d

        done = [d for d in await asyncio.gather(*(remove(d) for d in work)) if d is not None]
        if done:
            await self.db.run(lambda: self._finish(done))
        for d in done:
            report.objects_deleted += len(d.names)
            (report.deleted_whole if d.whole else report.deleted_partly).append(d.item.recording_id)
        if done:
            log.info(
                "retention: %d recordings deleted, %d partly (%d objects)",
                len(report.deleted_whole),
                len(report.deleted_partly),
                report.objects_deleted,
            )
        return report

    def _blocked(
        self,
        rid: str,
        why: str,
        now: float,
        until: float | None,
        report: PassReport,
        updates: list[tuple[str, str | None, float | None]],
    ) -> None:
        retry = max(until, now + 1) if until is not None else now + self.settings.retry_seconds
        report.blocked[rid] = why
        updates.append((rid, why, retry))
        log.info("retention: recording %s is due but %s; next try %s", rid, why, _iso(retry))

    async def _plan(
        self,
        item: lc.DueRecording,
        now: float,
        report: PassReport,
        updates: list[tuple[str, str | None, float | None]],
    ) -> _Deletion | None:
        rid = item.recording_id
        listing = await asyncio.to_thread(self._list, item, self.storage())
        if item.intent is not None:  # a deletion a crash interrupted: the same one, whatever is left
            names, whole = list(item.intent), item.whole_intent
        else:
            names, whole = due_objects(listing.names, item.plan, now)
        if not names and not whole:
            remaining = {k for n in listing.names if (k := kind_of(n)) != RECORD}
            nxt = item.plan.next_deletion(ObjectKind(k) for k in remaining)
            if nxt is not None and nxt <= now:  # due kinds with nothing left of them: look again later
                nxt = now + self.settings.retry_seconds
            updates.append((rid, None, nxt))
            return None
        # checked again for an interrupted deletion too: a hold placed since then stops it
        why = "legal hold" if item.legal_hold else await asyncio.to_thread(self._protection, listing, names)
        if why is not None:
            self._blocked(rid, why, now, listing.locked_until, report, updates)
            return None
        return _Deletion(item, listing, names, whole, self.clock())

    def _finish(self, done: list[_Deletion]) -> None:
        """(catalog thread) One transaction: deleted objects, tombstones or next times, audit entries."""
        c = self.db.connection
        c.execute("BEGIN IMMEDIATE")
        try:
            entries: list[
                tuple[str, str | None, str, str | None, str, str | None, dict[str, DetailValue]]
            ] = []
            for d in done:
                rid, plan = d.item.recording_id, d.item.plan
                for name in d.names:
                    kind = kind_of(name)
                    lc.object_deleted(c, rid, name, str(kind), plan.rule_of(kind), d.at)
                if d.whole:
                    lc.tombstone(c, rid, "retention:" + ",".join(d.rules or ["default"]), d.at)
                else:
                    left = {k for n in d.listing.names if n not in d.names and (k := kind_of(n)) != RECORD}
                    lc.finish_partial(c, rid, plan.next_deletion(ObjectKind(k) for k in left))
                detail: dict[str, DetailValue] = {
                    "objects": len(d.names),
                    "whole": d.whole,
                    "rules": ",".join(d.rules),
                }
                entries.append(("system", None, "recording.retention_delete", rid, "ok", None, detail))
            self.audit.append_many_in(entries)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def _list(self, item: lc.DueRecording, access: StorageAccess | None) -> _Listing:
        stored: dict[str, str] = {}
        if access is not None:
            try:
                prefix = access.prefix(
                    item.recording_id, datetime.fromtimestamp(item.started_at, UTC), item.room_id
                )
            except ValueError:
                prefix = None
            if prefix is not None:
                stored = {o.key[len(prefix) :]: o.key for o in access.store.list(prefix)}
        local: dict[str, Path] = {}
        folder = Path(item.folder)
        if folder.is_dir() and self._inside(folder):
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    local[p.relative_to(folder).as_posix()] = p
        return _Listing(stored, local, access)

    def _protection(self, listing: _Listing, names: list[str]) -> str | None:
        """(worker thread) Why an object to delete is protected in the store, None when none is."""
        access = listing.access
        if access is None:
            return None
        store = access.store
        lock = store.object_lock_enabled()
        now = datetime.now(UTC)
        for name in names:
            key = listing.stored.get(name)
            if key is None:
                continue
            try:
                if store.legal_hold(key):
                    return f"{name} is under legal hold in the store"
                retention = store.get_retention(key) if lock or isinstance(store, LocalStore) else None
            except ObjectNotFoundError:
                continue
            if retention is not None and retention.until > now:
                listing.locked_until = retention.until.timestamp()
                return f"{name} is under object lock until {retention.until.isoformat()}"
        return None

    def _remove_all(self, d: _Deletion) -> None:
        """(worker thread) Remove each object from the store for good and from the local folder (names
        already gone are not an error: a resumed deletion removes what is left)."""
        for name in d.names:
            self._remove(d.listing, name)
        if d.whole:
            self._remove_folder(Path(d.item.folder))

    def _remove(self, listing: _Listing, name: str) -> None:
        key = listing.stored.get(name)
        if key is not None and listing.access is not None:
            listing.access.store.purge(key)
        path = listing.local.get(name)
        if path is not None:
            path.unlink(missing_ok=True)

    def _remove_folder(self, folder: Path) -> None:
        if folder.is_dir() and self._inside(folder):
            shutil.rmtree(folder, ignore_errors=True)

    def _inside(self, folder: Path) -> bool:
        return self.recordings_dir.resolve() in folder.resolve().parents

    async def _announce(self, d: _Deletion) -> None:
        publish = self.publish()
        if publish is None:
            return
        item = d.item
        data = RecordingDeleted(
            recording_id=item.recording_id,
            room_id=item.room_id,
            deleted_at=datetime.fromtimestamp(d.at, UTC),
            whole=d.whole,
            rules=d.rules,
            objects=d.names,
        )
        suffix = "all" if d.whole else str(len(d.names)) + "-" + d.names[0].replace("/", "_")[:60]
        await publish(WebhookEvent.of(data), f"deleted-{item.recording_id}-{suffix}")

    # -- dry run --------------------------------------------------------------------------------------

    async def dry_run(
        self, until: float, limit: int, offset: int
    ) -> list[tuple[str, str | None, DeletionPlan, float, str | None, bool]]:
        """(recording id, room, plan, next deletion, blocked why, legal hold) due by `until`."""

        def read() -> list[tuple[str, str | None, DeletionPlan, float, str | None, bool]]:
            return [
                (
                    r["recording_id"],
                    r["room_id"],
                    DeletionPlan.model_validate_json(r["delete_plan"]),
                    r["next_deletion"],
                    r["lifecycle_blocked"],
                    bool(r["legal_hold"]),
                )
                for r in lc.upcoming(self.db.connection, until, limit, offset)
                if r["delete_plan"]
            ]

        return await self.db.run(read)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
