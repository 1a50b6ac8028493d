"""A recorder's side of room control across a fleet (docs/fleet.md, "Room control in a fleet"): it takes
the room commands addressed to its node name (recorder/fleet/commands.py), acts on them through its own
manager and SFU bridge exactly as a single node's API does, and writes the result.

It is woken at once by PostgreSQL's LISTEN/NOTIFY (a connection of its own) and looks every
fleet.command_poll_seconds besides, so a lost notification (the listening connection broken, PostgreSQL
restarted) only delays a command. Commands an earlier run of this node took and never answered are failed
at start, never executed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from recorder.api.db import Database
from recorder.api.models import StartRequest
from recorder.fleet import commands
from recorder.fleet.commands import Action, Command, Result

if TYPE_CHECKING:
    from recorder.api.policy import PolicyStore, RoomControl
    from recorder.service.manager import RecordingManager

log = logging.getLogger(__name__)

KEEP_SECONDS = 7 * 24 * 3600.0
"""Answered or expired commands are kept a week (then the audit log alone tells of them)."""
PRUNE_EVERY = 3600.0


class CommandExecutor:
    def __init__(
        self,
        db: Database,
        node: str,
        manager: RecordingManager,
        control: RoomControl | None,
        policy: PolicyStore | None,
        conninfo: str | None,
        poll_seconds: float,
    ) -> None:
        self.db = db
        self.dialect = db.dialect
        self.node = node
        self.manager = manager
        self.control = control
        self.policy = policy
        """The node's policy store when it has the api role: a start's call id and tags wait there."""
        self.conninfo = conninfo
        self.poll_seconds = poll_seconds
        self.executed = 0
        self._wake = asyncio.Event()
        self._next_prune = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        count = await self.db.run(lambda: commands.interrupted(self.db.connection, self.dialect, self.node))
        if count:
            log.warning(
                "room commands: %d taken by an earlier run and not answered: failed, not run again", count
            )
        self._tasks.append(asyncio.create_task(self._run(), name="room-commands"))
        if self.conninfo is not None:
            self._tasks.append(asyncio.create_task(self._listen(self.conninfo), name="room-commands-listen"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _listen(self, conninfo: str) -> None:
        import psycopg  # noqa: PLC0415 (the postgres extra: only a fleet on PostgreSQL listens)

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {commands.CHANNEL}")
                    self._wake.set()  # what was written while this connection was down
                    async for note in conn.notifies():
                        if note.payload == self.node:
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll goes on meanwhile
                log.warning("room commands: cannot listen for notifications: %s", str(exc).strip()[:200])
            await asyncio.sleep(self.poll_seconds)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the catalog unreachable a moment: next time
                log.warning("room commands: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)

    async def once(self) -> int:
        """Take and execute this node's pending commands; returns how many."""
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            await self.db.run(
                lambda: commands.prune(self.db.connection, self.dialect, self.node, KEEP_SECONDS)
            )
        taken = await self.db.run(lambda: commands.take(self.db.connection, self.dialect, self.node))
        for command in taken:
            try:
                result = await self.execute(command)
            except Exception as exc:
                log.exception("room command %s (%s) failed", command.command_id, command.action.value)
                result = Result(error=f"{type(exc).__name__}: {exc}"[:300], problem="recorder-error")
            cid, done = command.command_id, result
            await self.db.run(
                lambda cid=cid, done=done: commands.finish(self.db.connection, self.dialect, cid, done)  # type: ignore[misc]
            )
            self.executed += 1
            log.info(
                "room command %s: %s room %s%s by %s from %s: %s",
                command.command_id,
                command.action.value,
                command.room_id,
                f" recording {command.recording_id}" if command.recording_id else "",
                command.requested_by,
                command.requested_from,
                "error: " + result.error if result.error else ("done" if result.done else "nothing to do"),
            )
        return len(taken)

    async def execute(self, command: Command) -> Result:
        room = command.room_id
        if command.action in (Action.PAUSE, Action.RESUME):
            live = self.manager.rooms.get(room)
            if live is None or live.info.recording_id != command.recording_id:
                return Result(done=False)
            pid = command.participant_id
            if command.action is Action.PAUSE:
                done = self.manager.pause(room, pid, by=command.requested_by, reason=command.reason)
            else:
                done = self.manager.resume(room, pid)
            return Result(done=done, has_room=True)
        control = self.control
        has_room = room in self.manager.rooms or (control is not None and room in control.publishers)
        if command.action is Action.START:
            if control is None:
                return Result(error="this recorder follows no SFU to start recording", problem="no-sfu")
            live = self.manager.rooms.get(room)
            if live is not None:  # already recording: the tags and call id go on this recording
                live.info.metadata.update(command.metadata)
                if command.call_id is not None:
                    live.info.call_id = command.call_id
            elif self.policy is not None:
                self.policy.pending[room] = StartRequest(call_id=command.call_id, metadata=command.metadata)
            switched = not control.records(room)
            if switched:
                await control.set_recording(room, True)
            control.room_policy[room] = True
            return Result(done=True, switched=switched, has_room=has_room)
        # STOP
        switched = False
        if control is not None:
            switched = control.records(room)
            if switched:
                await control.set_recording(room, False)
            control.room_policy[room] = False
        if room in self.manager.rooms:
            await self.manager.finish_room(room)
            switched = True
        return Result(done=True, switched=switched, has_room=has_room)
