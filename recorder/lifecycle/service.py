"""`Lifecycle`: the records lifecycle as `callvault serve` runs it, beside the control API (it shares the
API's catalog): at start, the retention rules are loaded, legal holds reconciled with the store and
interrupted exports resumed; then every `lifecycle.interval_seconds` (or at once when a hold or a rule
changes) one pass applies holds to the store, plans and deletes what is due, and fires export schedules.

On a fleet every node with the `api` role runs this, one pass at a time across the fleet
(recorder/lifecycle/fleet_pass.py), or, with `lifecycle.run_on = "workers"`, the worker nodes run the
passes (recorder/jobs/lifecycle.py) and the API nodes none; with the job queue (`follow_queue`) exports
are built by the workers and this node announces the ones they ended and queues again those the queue
lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess, archive_of
from recorder.lifecycle.deletion import DeletionScheduler, PassReport, Publish
from recorder.lifecycle.exports import ExportQueue, ExportRunner
from recorder.lifecycle.fleet_pass import fleet_pass
from recorder.lifecycle.holds import LegalHolds
from recorder.lifecycle.pending import PendingWebhooks
from recorder.lifecycle.settings import LifecycleSettings
from recorder.manifest.signing import SigningSettings, load_signing_key
from recorder.webhooks.events import WebhookEvent

log = logging.getLogger(__name__)

KEY_FILE = "callvault-signing-key.pem"
PASS_WAIT = 60.0
"""How long a pass asked through the API waits for another node's pass to end."""
FOLLOW_SECONDS = 2.0
"""How often a fleet's API node looks for exports the workers ended (to announce) or the queue lost, and
for webhooks the workers left (recording.deleted)."""


class Lifecycle:
    def __init__(
        self,
        settings: LifecycleSettings,
        data_dir: Path,
        db: Database,
        catalog: Catalog,
        audit: AuditLog,
        sinks: list[Any],
        recordings_dir: Path,
        is_live: Callable[[str], bool],
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.db = db
        self.sinks = sinks
        storage = self._storage
        self.deletion = DeletionScheduler(
            settings, db, audit, storage, recordings_dir, is_live, self._publisher
        )
        self.holds = LegalHolds(db, audit, storage)
        self.pending = PendingWebhooks(db)
        """Webhooks workers left in the catalog (recorder/lifecycle/pending.py)."""
        self.exports = ExportRunner(
            settings, data_dir, db, catalog, audit, storage, self._key, self._publisher
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None
        self.node = ""
        """This node's name in the fleet (who announced an export a worker ended)."""
        self._pass_lock = asyncio.Lock()
        self.passes = True
        """Whether this node runs the periodic passes (False: an API node of a fleet whose workers do)."""
        self.follows = True
        """Whether this node announces the exports the workers ended (False: a worker, without webhooks)."""
        self.last_pass: PassReport | None = None

    # -- what the archive provides, looked up at call time (it starts after the API) --------------------

    def _storage(self) -> StorageAccess | None:
        return StorageAccess.of(self.sinks)

    def _publisher(self) -> Publish | None:
        archive = archive_of(self.sinks)
        if archive is None:
            return None
        try:
            dispatcher = archive.dispatcher
        except RuntimeError:  # not started
            return None

        async def publish(event: WebhookEvent, msg_id: str) -> object:
            return await dispatcher.publish(event, msg_id=msg_id)

        return publish

    def _key(self) -> Ed25519PrivateKey:
        """(blocking) The manifest signing key: the archive's, else one kept in data_dir."""
        archive = archive_of(self.sinks)
        if archive is not None:
            try:
                key: Ed25519PrivateKey = archive.running.key
                return key
            except RuntimeError:
                signing: SigningSettings = archive.settings.signing
                return load_signing_key(signing)
        return load_signing_key(SigningSettings(key_file=self.data_dir / KEY_FILE))

    def follow_queue(self, queue: ExportQueue, node: str) -> None:
        """(a fleet's API node, before start) Exports go to the workers through the job queue."""
        self.exports.queue = queue
        self.node = node

    # -- running ----------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Run a pass now (a hold or a rule changed)."""
        self._wake.set()

    def hold_changed(self, recording_id: str, hold: bool, loop: asyncio.AbstractEventLoop) -> None:
        """(catalog thread: a Catalog hold listener) Apply the hold to the store now, then wake a pass
        (a deletion blocked by the hold may be due)."""
        try:
            self.holds.apply_now(recording_id, hold)
        except Exception:
            log.exception("legal hold of recording %s: applying it to the store failed", recording_id)
        loop.call_soon_threadsafe(self.wake)

    async def start(self) -> None:
        await self.deletion.load_rules()
        try:
            report = await self.holds.reconcile()
            if report.differences or report.failed:
                log.warning(
                    "legal hold: %d differences between the catalog and the store, %d recordings not"
                    " reconciled (see the audit log: lifecycle.hold_reconcile)",
                    len(report.differences),
                    len(report.failed),
                )
        except Exception:
            log.exception("legal hold reconciliation failed; it is tried again at every pass")
        resumed = await self.exports.resume()
        if resumed:
            log.info("exports: %d interrupted jobs resumed", resumed)
        if self.passes:
            self._task = asyncio.create_task(self._loop(), name="lifecycle")
        if self.exports.queue is not None and self.follows:
            self._follow = asyncio.create_task(self._follow_exports(), name="exports on the queue")

    async def stop(self) -> None:
        for task in (self._task, self._follow):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._follow = None
        await self.exports.stop()

    async def run_pass(self, wait: float | None = PASS_WAIT) -> tuple[PassReport, int] | None:
        """One pass: holds to the store, deletion, schedules, expired downloads. (report, holds applied)
        On a fleet, while no other node's pass runs: `wait` None skips the pass (returns None) when one
        does, else waits for it up to `wait` s (then PassBusyError)."""
        async with self._pass_lock, fleet_pass(self.db, wait) as held:
            if not held:
                log.debug("lifecycle pass skipped: another node's pass runs")
                return None
            holds = await self.holds.apply_pending()
            report = await self.deletion.run_once()
            await self.exports.fire_due()
            await self.exports.expire()
            self.last_pass = report
            return report, len(holds.applied)

    async def rules_changed(self) -> None:
        await self.deletion.load_rules()
        async with self._pass_lock:
            await self.deletion.evaluate(only_unplanned=False)
        self.wake()

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pass(wait=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle pass failed; next one in %.0f s", self.settings.interval_seconds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.interval_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def _follow_exports(self) -> None:
        while True:
            try:
                await self.exports.announce_ended(self.node)
                publish = self._publisher()
                if publish is not None:
                    await self.pending.send(self.node, publish)
                await self.exports.requeue_lost()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("exports on the queue: not followed this time")
            await asyncio.sleep(FOLLOW_SECONDS)
