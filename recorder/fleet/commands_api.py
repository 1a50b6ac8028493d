"""An API node's room control in a fleet (docs/fleet.md, "Room control in a fleet"): a node that follows
no SFU itself hands each room command to the recorder concerned through the catalog's `room_commands`
(recorder/fleet/commands.py) and waits for its result, at most fleet.command_timeout_seconds.

Which recorder: a recording's pause and resume go to the recorder recording it (`recordings.recorder`);
a room's stop to the recorder(s) recording the room, a room's start to every live recorder (a room not
recorded has no recorder yet: each recorder whose SFU has the room starts it, the others remember the
room is to be recorded), unless `?recorder=` names one. Two SFUs may each have a room with the same id:
a stop while two recorders record such a room is refused (409) until `?recorder=` names one.

Answers: the single node's (200, 404 for a recording or participant not in progress), 503 when the
recorder concerned is not alive (nothing sent), 504 when it did not take the command in time (it never
will: the command expired) or took it and did not answer in time (whether it acted is unknown then).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from pydantic import BaseModel, Field

from recorder.api.db import Database
from recorder.api.models import StartRequest
from recorder.api.problems import ApiError
from recorder.api.registry import Call
from recorder.fleet import commands, rooms
from recorder.fleet.commands import Action, Command, RecorderState, Result, State
from recorder.fleet.rooms import RecorderRooms
from recorder.fleet.settings import NODE_NAME

log = logging.getLogger(__name__)

PROBLEM_STATUS = {"no-sfu": 409, "interrupted": 504}


class RoomTarget(BaseModel):
    recorder: str | None = Field(
        default=None,
        pattern=f"^{NODE_NAME.pattern}$",
        description="A fleet: the recorder (node name, GET /v1/recorders) whose SFU's room is meant, when"
        " two SFUs have a room with this id. Without it a start goes to every live recorder and a stop to"
        " the room's recorder. Named, the room's policy in the catalog is left unchanged (it is fleet-wide).",
    )


class FleetRooms:
    def __init__(self, db: Database, node: str, timeout: float, dead_after: float) -> None:
        self.db = db
        self.dialect = db.dialect
        self.node = node
        """This API node's name (the audit log says from which node a command came)."""
        self.timeout = timeout
        self.dead_after = dead_after

    # -- recordings: pause and resume -----------------------------------------------------------------

    async def pause(self, call: Call, rid: str, pid: str | None, pause: bool, reason: str | None) -> bool:
        """Pause or resume a recording (or one participant) on its recorder; False when that recorder has
        no such recording or participant in progress."""
        found = await self.db.run(lambda: commands.recording(self.db.connection, rid))
        if found is None or found.room_id is None:
            raise ApiError(404, f"recording {rid} is not in progress", "not-recording")
        room = found.room_id
        call.detail["room"] = room
        if found.recorder is None:
            raise ApiError(
                503, f"recording {rid} of room {room} has no recorder noted in the catalog", "no-recorder"
            )
        await self._require_alive(found.recorder, room)
        command = self._command(
            call,
            Action.PAUSE if pause else Action.RESUME,
            room,
            recording_id=rid,
            participant_id=pid,
            reason=reason,
        )
        result = await self._send(call, found.recorder, command)
        return result.done

    # -- rooms: start and stop ------------------------------------------------------------------------

    async def switch(
        self, call: Call, room: str, on: bool, request: StartRequest | None, named: str | None
    ) -> None:
        if named is not None:
            if (await self._state(named)).silent_for is None:
                raise ApiError(404, f"no recorder {named} in the fleet", "not-found")
            await self._require_alive(named, room)
            targets = [named]
        else:
            live = await self.db.run(
                lambda: commands.live_recorders(self.db.connection, self.dialect, self.dead_after)
            )
            recorders: list[str] = []
            if not on:
                recordings = await self.db.run(lambda: commands.room_recordings(self.db.connection, room))
                recorders = sorted({r.recorder for r in recordings if r.recorder is not None})
                if len(recorders) > 1:
                    raise ApiError(
                        409,
                        f"room {room} is recorded by recorders {', '.join(recorders)} (two SFUs have a room"
                        " with this id): name one with ?recorder=",
                        "ambiguous-room",
                    )
                for node in recorders:
                    await self._require_alive(node, room)
            targets = sorted(set(recorders) | set(live))  # the others remember the room's new state
            if not targets:
                raise ApiError(503, f"no live recorder in the fleet for room {room}", "no-recorder")
        results = await asyncio.gather(
            *(
                self._send(
                    call,
                    node,
                    self._command(
                        call,
                        Action.START if on else Action.STOP,
                        room,
                        call_id=request.call_id if request is not None else None,
                        metadata=dict(request.metadata) if request is not None else {},
                    ),
                    many=len(targets) > 1,
                )
                for node in targets
            ),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        call.detail["recorders"] = ",".join(targets)
        switched = [n for n, r in zip(targets, results, strict=True) if isinstance(r, Result) and r.switched]
        call.detail["switched_on"] = ",".join(switched)
        if errors:
            raise errors[0]

    # -- rooms as the recorders see them ---------------------------------------------------------------

    async def live_rooms(self) -> list[RecorderRooms]:
        """Every recorder's rooms as it last wrote them, with its state (recorder/fleet/rooms.py)."""
        return await self.db.run(lambda: rooms.read(self.db.connection, self.dialect, self.dead_after))

    # -- sending --------------------------------------------------------------------------------------

    def _command(
        self,
        call: Call,
        action: Action,
        room: str,
        recording_id: str | None = None,
        participant_id: str | None = None,
        reason: str | None = None,
        call_id: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Command:
        return Command(
            command_id="cmd_" + secrets.token_hex(12),
            action=action,
            room_id=room,
            recording_id=recording_id,
            participant_id=participant_id,
            reason=reason,
            call_id=call_id,
            metadata=metadata or {},
            requested_by=call.principal.name,
            requested_from=self.node,
        )

    async def _state(self, node: str) -> RecorderState:
        return await self.db.run(
            lambda: commands.recorder_state(self.db.connection, self.dialect, node, self.dead_after)
        )

    async def _require_alive(self, node: str, room: str) -> None:
        state = await self._state(node)
        if state.alive:
            return
        if state.silent_for is None:
            why = "is not registered in the fleet"
        elif state.stopped:
            why = "has stopped"
        else:
            why = f"is not alive (no heartbeat for {state.silent_for:.0f} s)"
        raise ApiError(
            503, f"recorder {node}, which has room {room}, {why}: the command was not sent", "recorder-down"
        )

    async def _send(self, call: Call, node: str, command: Command, many: bool = False) -> Result:
        call.detail["api_node"] = self.node
        if not many:  # several: `recorders` lists them
            call.detail["recorder"] = node
            call.detail["command"] = command.command_id
        timeout = self.timeout
        await self.db.run(lambda: commands.submit(self.db.connection, self.dialect, node, command, timeout))
        cid, room = command.command_id, command.room_id
        outcome = await self._wait(cid, time.monotonic() + timeout)
        if outcome.state is State.PENDING or outcome.state is State.EXPIRED:
            gave_up = await self.db.run(lambda: commands.expire(self.db.connection, self.dialect, cid))
            if gave_up or outcome.state is State.EXPIRED:
                raise ApiError(
                    504,
                    f"recorder {node} did not take the command for room {room} within {timeout:.0f} s:"
                    " not executed",
                    "recorder-timeout",
                )
            outcome = await self._wait(cid, time.monotonic() + timeout)  # taken meanwhile: its result
        if outcome.state is State.TAKEN:
            raise ApiError(
                504,
                f"recorder {node} took the command for room {room} but did not answer within"
                f" {2 * timeout:.0f} s: whether it acted is not known (see GET /v1/rooms/{room})",
                "recorder-timeout",
            )
        result = outcome.result or Result()
        if result.error is not None:
            status = PROBLEM_STATUS.get(result.problem or "", 502)
            raise ApiError(
                status, f"recorder {node}: room {room}: {result.error}", result.problem or "recorder-error"
            )
        return result

    async def _wait(self, cid: str, deadline: float) -> commands.Outcome:
        delay = 0.02
        while True:
            outcome = await self.db.run(lambda: commands.outcome(self.db.connection, cid))
            if outcome.state not in (State.PENDING, State.TAKEN) or time.monotonic() >= deadline:
                return outcome
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.2)
