"""A `callvault serve` node's part in the recorder fleet (docs/fleet.md, "Recorder fleet").

- recorder role: registers its node name in the catalog's `recorders` table (refused if a live recorder
  holds it), sends a heartbeat every fleet.heartbeat_seconds, claims each recording it starts
  (`recordings.recorder`), lists each closed segment (`recording_segments`), lifts a peer's failure mark
  from a recording it recovers after a restart, and marks its row stopped on a clean stop. Its recording
  ids carry its node name on a PostgreSQL catalog, so they are unique across the fleet.
- recorder role, found dead while alive (paused, overloaded, cut off from the catalog for longer than
  fleet.dead_after_seconds): its next heartbeat lifts the mark and writes its live recordings again (a
  peer's failure mark lifted, `recording.recovered`), with a warning; if another run took its node name
  meanwhile, it exits at once (EXIT_NAME_LOST) without writing anything more.
- recorder and api roles: look for recorders silent for fleet.dead_after_seconds and mark their
  recordings in progress failed (recorder/fleet/registry.py: conditional, with the recovered segments, an
  audit entry, and recording.failed to this node's webhooks when it has an archive); only after this node
  itself has reached the catalog without a break for that long (after a catalog outage every heartbeat is
  old: nobody is declared dead until the recorders have had time to send one).
- api role: the fleet for GET /v1/recorders and /metrics (callvault_recorders_alive, _dead).
- recorder role: its live rooms (participants, pause state, recording ids) in its row of `recorders`, when
  they change (looked at every ROOMS_LOOK s) and with every heartbeat, for the API nodes' GET /v1/rooms
  (recorder/fleet/rooms.py).

The writes go through the catalog's worker thread (recorder/api/db.py), after the catalog sink's own
writes for the same recording (the sink is first in the manager's list).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, TYPE_CHECKING

from recorder import __version__
from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog, CatalogSink
from recorder.api.db import Database
from recorder.api.models import RecordingStatus
from recorder.fleet import registry, rooms
from recorder.fleet.models import FailedRecording, RecoveredSegment, Registration
from recorder.fleet.registry import Beat, NodeNameInUseError
from recorder.fleet.rooms import LiveRoom
from recorder.jobs.settings import Role
from recorder.models import PauseInterval, SegmentInfo, TrackSummary
from recorder.recording import RecordingInfo

if TYPE_CHECKING:
    from recorder.api.app import ControlApi
    from recorder.archive.archive import Archive
    from recorder.service.manager import RecordingManager
    from recorder.service.settings import ServiceSettings

log = logging.getLogger(__name__)

EXIT_NAME_LOST = 3
"""The exit status of a recorder that found its node name taken by another run (FleetNode._name_lost)."""
ROOMS_LOOK = 0.5
"""Seconds between two looks at this recorder's rooms (written to the catalog only when they changed)."""


class FleetNode:
    def __init__(self, settings: ServiceSettings, db: Database) -> None:
        self.settings = settings
        self.fleet = settings.fleet
        self.db = db
        self.dialect = db.dialect
        self.audit = AuditLog(db)
        self.roles = set(settings.roles)
        self.name = self.fleet.node()
        self.me: Registration | None = None
        self.archive: Archive | None = None
        """Set by serve once the archive exists: recording.failed goes to its webhooks."""
        self.alive = 0
        self.dead = 0
        self.reaped = 0
        self._lock: IO[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._rooms_task: asyncio.Task[None] | None = None
        self._published: list[LiveRoom] | None = None  # the rooms last written to the catalog
        self._own: Database | None = None  # the catalog connection of a recorder without the api role
        self._in_touch_since: float | None = None  # monotonic: the catalog answered without a break since
        self._resync = False  # the catalog was unreachable: write the live recordings again once it answers
        self._catalog = Catalog(db)
        self.manager: RecordingManager | None = None

    # -- start and stop -------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, settings: ServiceSettings, manager: RecordingManager, api: ControlApi | None
    ) -> FleetNode | None:
        """The node's part in the fleet, registered (recorder role), its sink in the manager's list right
        after the catalog's. A recorder node without the api role writes its recordings to the catalog
        itself (a CatalogSink of its own: the API nodes search them). None for a worker-only node."""
        roles = set(settings.roles)
        if not roles & {Role.RECORDER, Role.API}:
            return None
        own: Database | None = None
        if api is not None:
            db = api.ctx.db
        else:
            own = db = await asyncio.to_thread(Database, settings.api.catalog_location(settings.data_dir))
            sink = CatalogSink(Catalog(own, settings.api.retention_days))
            manager.sinks.insert(0, sink)
        node = cls(settings, db)
        node.manager = manager
        node._own = own
        if Role.RECORDER in roles:
            manager.sinks.insert(1, node)
        try:
            await node.register(manager)
        except BaseException:
            await node.close()
            raise
        return node

    async def register(self, manager: RecordingManager) -> None:
        """Take this node's name in the fleet (recorder role). NodeNameInUseError when a live recorder
        holds it; OSError when another process of this data_dir holds its lock."""
        if Role.RECORDER not in self.roles:
            return
        self._lock, previous = await asyncio.to_thread(self._lock_name)
        me = Registration(
            node=self.name,
            incarnation=secrets.token_hex(8),
            sfu=self._sfu(),
            rtp_port_min=self.settings.rtp_port_min,
            rtp_port_max=self.settings.rtp_port_max,
            version=__version__,
        )
        keep = {state.recording_id for state in manager.resumable.values()}  # what this run takes up
        lost = await self.db.run(
            lambda: registry.register(
                self.db.connection,
                self.dialect,
                me,
                self.fleet.dead_after_seconds,
                previous,
                keep,
                self.audit,
            )
        )
        for f in lost:
            self.reaped += 1
            log.error("fleet: recording %s failed: %s", f.recording_id, f.failure.reason)
        await asyncio.to_thread(self._remember, me.incarnation)
        self.me = me
        if self.dialect == "postgresql":  # a fleet: ids unique across it (node names are)
            manager.node_name = self.name
        log.info("fleet: recorder %s registered (SFU %s)", self.name, me.sfu)

    def _sfu(self) -> str:
        if self.fleet.sfu:
            return self.fleet.sfu
        return self.settings.janus.ws_url if self.settings.janus.enabled else "ingest"

    def _lock_name(self) -> tuple[IO[str], str | None]:
        folder = self.settings.data_dir / "fleet"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.lock"
        handle = path.open("a+", encoding="ascii")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise NodeNameInUseError(
                f"recorder node name {self.name!r} is in use by another process on {self.settings.data_dir}"
            ) from None
        handle.seek(0)
        previous = handle.read().strip() or None
        return handle, previous

    def _remember(self, incarnation: str) -> None:
        assert self._lock is not None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(incarnation)
        self._lock.flush()
        os.fsync(self._lock.fileno())

    def start(self) -> None:
        if self.roles & {Role.RECORDER, Role.API}:
            self._task = asyncio.create_task(self._run(), name="fleet")
        if self.me is not None and self.manager is not None and self._publishes_rooms:
            self._rooms_task = asyncio.create_task(self._follow_rooms(self.manager), name="fleet-rooms")

    async def close(self) -> None:
        for task in (self._task, self._rooms_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        me = self.me
        if me is not None:
            try:
                await self.db.run(lambda: registry.leave(self.db.connection, self.dialect, me))
            except Exception as exc:  # the catalog is down: peers will find it silent
                log.warning("fleet: could not mark recorder %s stopped: %s", me.node, exc)
        if self._lock is not None:
            self._lock.close()
        if self._own is not None:
            await asyncio.to_thread(self._own.close)

    # -- the loop -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the catalog is unreachable: try again next beat
                self._in_touch_since = None
                self._resync = True
                log.warning(
                    "fleet: catalog unreachable: %s", str(exc).strip().splitlines()[0] if str(exc) else exc
                )
            await asyncio.sleep(self.fleet.heartbeat_seconds)

    async def tick(self) -> None:
        """One beat: heartbeat, the dead, the fleet's figures."""
        me = self.me
        if me is not None:
            beat = await self.db.run(lambda: registry.heartbeat(self.db.connection, self.dialect, me))
            if beat is Beat.LOST:
                self._name_lost(me)
            elif beat is Beat.REVIVED:
                log.warning(
                    "fleet: recorder %s was found dead by a peer (no heartbeat for %.0f s: paused, overloaded"
                    " or cut off from the catalog) and is alive again: its live recordings are its own again",
                    me.node,
                    self.fleet.dead_after_seconds,
                )
                self._resync = True
            if self._resync and self.manager is not None:
                await self._resync_live(self.manager, me.node)
            self._resync = False
            if self.manager is not None and self._publishes_rooms:
                await self._publish_rooms(me, rooms.snapshot(self.manager))
        if self._in_touch_since is None:
            self._in_touch_since = time.monotonic()
        if time.monotonic() - self._in_touch_since >= self.fleet.dead_after_seconds:
            await self._reap()
        if Role.API in self.roles:
            fleet = await self.db.run(
                lambda: registry.list_recorders(
                    self.db.connection, self.dialect, self.fleet.dead_after_seconds
                )
            )
            self.alive, self.dead = fleet.alive, fleet.dead

    def _name_lost(self, me: Registration) -> None:
        """Another run registered this node name after a peer found this one dead: that run took up (or
        failed) this node's recordings, and in a fleet sharing `recordings/` finalized their tracks. This run
        fences itself off: it exits at once, as a crash would, writing nothing more (no segment, no finish,
        no catalog row), so that one recording never has two writers."""
        log.critical(
            "fleet: recorder node name %s was taken by another run after this one was found dead: its"
            " recordings are that run's now; exiting without finishing them (exit status %d)",
            me.node,
            EXIT_NAME_LOST,
        )
        logging.shutdown()
        os._exit(EXIT_NAME_LOST)

    @property
    def _publishes_rooms(self) -> bool:
        """A fleet's recorder (PostgreSQL): its API nodes list its rooms. One node on SQLite lists its own."""
        return self.dialect == "postgresql"

    async def _follow_rooms(self, manager: RecordingManager) -> None:
        """Write this recorder's rooms into the catalog when they change (the heartbeat writes them too)."""
        me = self.me
        assert me is not None
        while True:
            await asyncio.sleep(ROOMS_LOOK)
            now = rooms.snapshot(manager)
            if now != self._published:
                try:
                    await self._publish_rooms(me, now)
                except Exception as exc:  # the catalog is down: the next look or heartbeat tries again
                    log.debug("fleet: rooms not written: %s", exc)

    async def _publish_rooms(self, me: Registration, live: list[LiveRoom]) -> None:
        await self.db.run(lambda: rooms.publish(self.db.connection, self.dialect, me, live))
        self._published = live

    async def _resync_live(self, manager: RecordingManager, node: str) -> None:
        """After a catalog outage: write this recorder's live recordings again (one that started during
        the outage, or whose start was lost with it, would be unknown to the fleet), claimed by this node."""
        live = [
            (r.info.model_copy(deep=True), RecordingStatus.PAUSED if r.paused else RecordingStatus.RECORDING)
            for r in manager.rooms.values()
            if not r.finishing
        ]

        def write() -> None:
            for info, status in live:
                self._catalog.upsert_recording(info, status)
                self._started(info.recording_id, node)

        await self.db.run(write)
        if live:
            log.info("fleet: %d live recordings written to the catalog again after an outage", len(live))

    async def _reap(self) -> None:
        name = self.me.node if self.me is not None else ""
        dead, failed = await self.db.run(
            lambda: registry.reap(
                self.db.connection, self.dialect, name, self.fleet.dead_after_seconds, self.audit, self.name
            )
        )
        for node in dead:
            log.warning(
                "fleet: recorder %s is silent for more than %.0f s: dead", node, self.fleet.dead_after_seconds
            )
        for f in failed:
            self.reaped += 1
            log.error(
                "fleet: recording %s failed: %s; %d segments recovered",
                f.recording_id,
                f.failure.reason,
                len(f.failure.segments),
            )
            await self._announce(f)

    async def _announce(self, f: FailedRecording) -> None:
        if self.archive is None:
            return
        from recorder.webhooks.events import RecordingFailed, WebhookEvent  # noqa: PLC0415

        segments = f.failure.segments
        data = RecordingFailed(
            recording_id=f.recording_id,
            room_id=f.room_id,
            call_id=f.call_id,
            failed_at=f.failure.detected_at,
            stage="recorder",
            error=f"{f.failure.reason}; {len(segments)} segments recovered"
            f" ({sum(s.size for s in segments)} bytes): "
            + ", ".join(s.path for s in segments[:50])
            + (" ..." if len(segments) > 50 else ""),
        )
        try:
            await self.archive.running.dispatcher.publish(
                WebhookEvent.of(data), msg_id=f"msg_{f.recording_id}.lost"
            )
        except Exception:
            log.exception("fleet: recording.failed of %s not queued", f.recording_id)

    def counters(self) -> dict[str, int]:
        return {"alive": self.alive, "dead": self.dead, "recordings_failed": self.reaped}

    # -- RecordingSink (recorder role) ----------------------------------------------------------------

    def _submit(self, what: str, fn: Callable[[], None]) -> None:
        future = self.db.submit(fn)

        def report(f: Future[None]) -> None:
            exc = f.exception()
            if exc is not None:
                log.error("fleet: cannot record %s: %s", what, exc)

        future.add_done_callback(report)

    def recording_started(self, info: RecordingInfo) -> None:
        if self.me is None:
            return
        rid, node = info.recording_id, self.me.node
        self._submit(f"the recorder of {rid}", lambda: self._started(rid, node))

    def _started(self, rid: str, node: str) -> None:
        registry.claim(self.db.connection, rid, node)
        registry.recovered(self.db.connection, rid, node, self.audit)

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        if self.me is None:
            return
        rid = folder.name
        seg = RecoveredSegment(
            track=track, index=segment.index, path=segment.path, size=segment.size, sha256=segment.sha256
        )
        self._submit("a segment", lambda: registry.add_segment(self.db.connection, self.dialect, rid, seg))

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        pass

    def recording_paused(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        pass

    def recording_resumed(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        pass

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        if self.me is None:
            return
        rid, node = info.recording_id, self.me.node
        await self.db.run(lambda: self._started(rid, node))
