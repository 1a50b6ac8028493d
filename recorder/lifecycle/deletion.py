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
from functools import partial
from pathlib import Path
from typing import TypeVar

from recorder.api.audit import AuditLog
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
        report = PassReport(evaluated=await self.evaluate())
        now = self.clock()
        batch = await self._sql(lc.due, now, self.settings.batch_size)
        for item in batch:
            try:
                await self._delete(item, now, report)
            except StorageError as exc:
                why = f"store unavailable: {exc}"
                report.blocked[item.recording_id] = why
                retry = now + self.settings.retry_seconds
                await self._sql(lc.block, item.recording_id, why, retry)
                log.warning("retention: recording %s not deleted now: %s", item.recording_id, why)
        return report

    async def _delete(self, item: lc.DueRecording, now: float, report: PassReport) -> None:
        rid = item.recording_id
        if self.is_live(rid):
            return  # finished in the catalog but still open here: never touched
        access = self.storage()
        listing = await asyncio.to_thread(self._list, item, access)
        if item.intent is not None:
            names, whole = [n for n in item.intent if n in listing.names], item.whole_intent
        else:
            names, whole = due_objects(listing.names, item.plan, now)
        if not names and not whole:
            remaining = {k for n in listing.names if (k := kind_of(n)) != RECORD}
            nxt = item.plan.next_deletion(ObjectKind(k) for k in remaining)
            if nxt is not None and nxt <= now:  # due kinds with nothing left of them: look again later
                nxt = now + self.settings.retry_seconds
            await self._sql(lc.finish_partial, rid, nxt)
            return
        why = "legal hold" if item.legal_hold else await asyncio.to_thread(self._protection, listing, names)
        if why is not None:
            retry = now + self.settings.retry_seconds
            if listing.locked_until is not None:
                retry = max(listing.locked_until, now + 1)
            report.blocked[rid] = why
            await self._sql(lc.block, rid, why, retry)
            log.info("retention: recording %s is due but %s; next try %s", rid, why, _iso(retry))
            return
        if item.intent is None:
            await self._sql(lc.begin, rid, names, whole)
        deleted_at = self.clock()
        await asyncio.to_thread(self._remove_all, item, listing, names, deleted_at)
        if whole:
            await asyncio.to_thread(self._remove_folder, Path(item.folder))
        rules = sorted({r for n in names if (r := item.plan.rule_of(kind_of(n))) is not None})
        await self._announce(item, names, whole, rules, deleted_at)
        by = "retention:" + ",".join(rules or ["default"])

        def finish() -> None:
            c = self.db.connection
            if whole:
                lc.tombstone(c, rid, by, deleted_at)
            else:
                left = {k for n in listing.names if n not in names and (k := kind_of(n)) != RECORD}
                lc.finish_partial(c, rid, item.plan.next_deletion(ObjectKind(k) for k in left))
            self.audit.append_now(
                "system",
                None,
                "recording.retention_delete",
                rid,
                "ok",
                None,
                {"objects": len(names), "whole": whole, "rules": ",".join(rules)},
            )

        await self.db.run(finish)
        report.objects_deleted += len(names)
        (report.deleted_whole if whole else report.deleted_partly).append(rid)
        log.info("retention: recording %s: %d objects deleted%s", rid, len(names), " (all)" if whole else "")

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

    def _remove_all(self, item: lc.DueRecording, listing: _Listing, names: list[str], at: float) -> None:
        """(worker thread) Remove each object; each removal is then recorded in the catalog (queued in
        order, so the pass's final transaction runs after them)."""
        for name in names:
            self._remove(listing, name)
            kind = kind_of(name)
            rule = item.plan.rule_of(kind)
            self.db.submit(partial(self._record_deleted, item.recording_id, name, str(kind), rule, at))

    def _record_deleted(self, rid: str, name: str, kind: str, rule: str | None, at: float) -> None:
        lc.object_deleted(self.db.connection, rid, name, kind, rule, at)

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

    async def _announce(
        self, item: lc.DueRecording, names: list[str], whole: bool, rules: list[str], at: float
    ) -> None:
        publish = self.publish()
        if publish is None:
            return
        data = RecordingDeleted(
            recording_id=item.recording_id,
            room_id=item.room_id,
            deleted_at=datetime.fromtimestamp(at, UTC),
            whole=whole,
            rules=rules,
            objects=names,
        )
        suffix = "all" if whole else str(len(names)) + "-" + names[0].replace("/", "_")[:60]
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
