"""Legal hold in the store: the catalog's hold (PUT /v1/recordings/{id}/legal-hold) applied to every
stored object of the recording (S3 object legal hold ON/OFF; the local store records it and refuses
deletion the same way), and start-up reconciliation of the two.

The catalog is the truth the API sets; `hold_applied` says what was last applied to the store. A pass
applies every difference; a store that refuses (a bucket without object lock, an outage) is reported
and tried again at the next pass. At start-up every recording with a hold is checked object by object:
an object that lacks the hold the catalog has gets it; an object held in the store while the catalog has
no hold is reported, never lifted (a hold CallVault did not place is not CallVault's to lift).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from recorder.api.audit import AuditLog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.lifecycle import catalog as lc
from recorder.storage.base import ObjectNotFoundError, StorageError

log = logging.getLogger(__name__)

PASS_LIMIT = 500


@dataclass
class HoldReport:
    applied: dict[str, int] = field(default_factory=dict)
    """recording id -> objects whose hold was set or lifted."""
    failed: dict[str, str] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    """Start-up reconciliation: where the store and the catalog disagreed (and what was done)."""


class LegalHolds:
    def __init__(self, db: Database, audit: AuditLog, storage: Callable[[], StorageAccess | None]) -> None:
        self.db = db
        self.audit = audit
        self.storage = storage
        self.last_reconciliation: HoldReport | None = None

    async def apply_pending(self) -> HoldReport:
        report = HoldReport()
        pending = await self.db.run(lambda: lc.hold_pending(self.db.connection, PASS_LIMIT))
        access = self.storage()
        for rid, want, _folder, started_at, room in pending:
            try:
                count = await asyncio.to_thread(self._set_all, access, rid, started_at, room, want)
            except StorageError as exc:
                report.failed[rid] = str(exc)
                log.warning("legal hold of recording %s not applied in the store yet: %s", rid, exc)
                continue
            report.applied[rid] = count

            def done(r: str = rid, w: bool = want, n: int = count) -> None:
                lc.hold_applied(self.db.connection, r, w)
                self.audit.append_now(
                    "system", None, "recording.legal_hold_store", r, "ok", None, {"hold": w, "objects": n}
                )

            await self.db.run(done)
        return report

    def apply_now(self, recording_id: str, on: bool) -> None:
        """(catalog thread, right after the catalog's hold changed) Apply it to the store before the API
        answers: when PUT .../legal-hold returns, the objects are held (or free again). A store that
        refuses leaves it to the next pass (`hold_applied` unchanged), which retries and reports."""
        c = self.db.connection
        row = c.execute(
            "SELECT started_at, room_id FROM recordings WHERE recording_id = ?", (recording_id,)
        ).fetchone()
        if row is None:
            return
        try:
            count = self._set_all(self.storage(), recording_id, row["started_at"], row["room_id"], on)
        except StorageError as exc:
            log.warning("legal hold of recording %s not applied in the store yet: %s", recording_id, exc)
            return
        lc.hold_applied(c, recording_id, on)
        self.audit.append_now(
            "system",
            None,
            "recording.legal_hold_store",
            recording_id,
            "ok",
            None,
            {"hold": on, "objects": count},
        )

    async def reconcile(self) -> HoldReport:
        """Start-up: compare every held recording's objects with the catalog (see the module doc)."""
        report = HoldReport()
        first = await self.apply_pending()  # holds placed or lifted while the service was down
        report.applied, report.failed = first.applied, dict(first.failed)
        access = self.storage()
        rows = await self.db.run(lambda: lc.held(self.db.connection))
        if access is not None:
            for rid, want, started_at, room in rows:
                try:
                    found = await asyncio.to_thread(self._compare, access, rid, started_at, room, want)
                except StorageError as exc:
                    report.failed[rid] = str(exc)
                    report.differences.append(f"{rid}: the store cannot be read: {exc}")
                    continue
                report.differences += found
        for line in report.differences:
            log.warning("legal hold reconciliation: %s", line)
        detail: dict[str, str | int | float | bool | None] = {
            "recordings": len(rows),
            "differences": len(report.differences),
            "failed": len(report.failed),
        }
        outcome = "ok" if not report.differences and not report.failed else "failed"
        if rows or report.applied or report.failed:  # nothing held, nothing to say
            await self.audit.append("system", None, "lifecycle.hold_reconcile", None, outcome, None, detail)
        self.last_reconciliation = report
        return report

    # -- worker thread --------------------------------------------------------------------------------

    def _keys(self, access: StorageAccess, rid: str, started_at: float, room: str | None) -> list[str]:
        try:
            prefix = access.prefix(rid, datetime.fromtimestamp(started_at, UTC), room)
        except ValueError:
            return []
        return [o.key for o in access.store.list(prefix)]

    def _set_all(
        self, access: StorageAccess | None, rid: str, started_at: float, room: str | None, on: bool
    ) -> int:
        if access is None:
            return 0
        count = 0
        for key in self._keys(access, rid, started_at, room):
            try:
                access.store.set_legal_hold(key, on)
            except ObjectNotFoundError:
                continue
            count += 1
        return count

    def _compare(
        self, access: StorageAccess, rid: str, started_at: float, room: str | None, want: bool
    ) -> list[str]:
        found = []
        for key in self._keys(access, rid, started_at, room):
            try:
                held = access.store.legal_hold(key)
            except ObjectNotFoundError:
                continue
            if want and not held:
                access.store.set_legal_hold(key, True)
                found.append(f"{rid}: {key} had no legal hold in the store; placed (the catalog holds it)")
            elif held and not want:
                found.append(
                    f"{rid}: {key} is under legal hold in the store but not in the catalog; left as it is"
                )
        return found
