"""Recording policy and rooms: the global default, per-room settings, start and stop on demand. Changes
take effect at once on running rooms through the SFU bridge."""

from __future__ import annotations

import logging

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import (
    DefaultPolicy,
    PolicyOut,
    RoomList,
    RoomOut,
    RoomPolicy,
    StartRequest,
)
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry
from recorder.fleet.commands_api import FleetRooms, RoomTarget
from recorder.fleet.rooms import live_room

log = logging.getLogger(__name__)

OPERATOR = {Role.OPERATOR}
VIEWERS = {Role.OPERATOR, Role.SUPERVISOR}
TAG = "policy"


def register(reg: Registry, ctx: ApiContext) -> None:
    policy = ctx.policy

    def known_rooms() -> set[str]:
        rooms = set(ctx.manager.rooms) | set(policy.rooms)
        if ctx.control is not None:
            rooms |= set(ctx.control.publishers)
        return rooms

    def room_out(room: str) -> RoomOut:
        recording = ctx.manager.rooms.get(room)
        recorded = ctx.control.records(room) if ctx.control is not None else policy.wants(room)
        out = RoomOut(room_id=room, recording=recorded, policy=policy.room(room))
        if recording is not None:
            live = live_room(room, recording)
            out.recording_id, out.paused, out.participants = live.recording_id, live.paused, live.participants
        return out

    async def fleet_rooms(fleet: FleetRooms) -> list[RoomOut]:
        """A fleet's API node without an SFU of its own: each room once per recorder that reported it (as
        that recorder sees it; this node's own live rooms as it sees them now), then the rooms only the
        policy names."""
        found: dict[tuple[str, str], RoomOut] = {}
        for recorder in await fleet.live_rooms():
            for live in recorder.rooms:
                out = room_out(live.room_id)
                out.recorder, out.recorder_state = recorder.node, recorder.state
                if recorder.node != fleet.node or live.room_id not in ctx.manager.rooms:
                    alive = recorder.state == "alive"  # nothing is in progress on a recorder not alive
                    out.recording_id = live.recording_id if alive else None
                    out.paused = alive and live.paused
                    out.participants = live.participants if alive else []
                found[(live.room_id, recorder.node)] = out
        named = {room for room, _ in found}
        for room in known_rooms():
            if room in ctx.manager.rooms and (room, fleet.node) not in found:  # not written yet
                out = room_out(room)
                out.recorder, out.recorder_state = fleet.node, "alive"
                found[(room, fleet.node)] = out
            elif room not in named:
                found[(room, "")] = room_out(room)
        return [found[k] for k in sorted(found)]

    async def apply(call: Call, rooms: set[str]) -> None:
        if ctx.control is None:
            return
        try:
            switched = await policy.apply(ctx.control, rooms)
        except Exception as exc:
            log.error("cannot apply the recording policy: %s", exc)
            raise ApiError(
                502, f"policy saved, but the SFU refused or is unreachable: {exc}", "sfu-error"
            ) from exc
        call.detail["switched"] = ",".join(switched)

    @reg.add("GET", "/v1/policy", OPERATOR, "The recording policy", TAG, "policy.view", response=PolicyOut)
    async def get_policy(call: Call) -> PolicyOut:
        return PolicyOut(default=policy.default, rooms=dict(policy.rooms))

    @reg.add(
        "PUT",
        "/v1/policy",
        OPERATOR,
        "Set the default: record every room, or only rooms enabled",
        TAG,
        "policy.update",
        body=DefaultPolicy,
        response=PolicyOut,
        errors=(502,),
    )
    async def set_default_policy(call: Call) -> PolicyOut:
        default = call.body(DefaultPolicy).default
        call.target = "default"
        call.detail = {"default": default}
        await policy.set_default(default)
        await apply(call, known_rooms())
        return PolicyOut(default=policy.default, rooms=dict(policy.rooms))

    @reg.add(
        "GET",
        "/v1/rooms",
        VIEWERS,
        "Rooms: policy, recording in progress, participants",
        TAG,
        "room.list",
        response=RoomList,
    )
    async def list_rooms(call: Call) -> RoomList:
        fleet = ctx.fleet_rooms if ctx.control is None else None
        if fleet is not None:
            return RoomList(rooms=await fleet_rooms(fleet))
        return RoomList(rooms=[room_out(r) for r in sorted(known_rooms())])

    @reg.add("GET", "/v1/rooms/{room_id}", VIEWERS, "One room", TAG, "room.view", response=RoomOut)
    async def get_room(call: Call) -> RoomOut:
        room = call.path["room_id"]
        fleet = ctx.fleet_rooms if ctx.control is None else None
        if fleet is None or room in ctx.manager.rooms:
            return room_out(room)
        # a fleet: the room as a live recorder records it (the first by name when two SFUs have it)
        entries = [r for r in await fleet_rooms(fleet) if r.room_id == room]
        return next((r for r in entries if r.recording_id), entries[0] if entries else room_out(room))

    @reg.add(
        "PUT",
        "/v1/rooms/{room_id}/policy",
        OPERATOR,
        "Set a room's recording policy (at once)",
        TAG,
        "policy.update",
        body=RoomPolicy,
        response=RoomOut,
        errors=(502,),
    )
    async def set_room_policy(call: Call) -> RoomOut:
        room = call.path["room_id"]
        new = call.body(RoomPolicy)
        call.detail = {
            "record": new.record,
            "outputs": ",".join(new.outputs),
            "tags": ",".join(sorted(new.metadata)),
        }
        await policy.set_room(room, new)
        await apply(call, {room})
        return room_out(room)

    async def switch(call: Call, on: bool) -> RoomOut:
        room = call.path["room_id"]
        named = call.query(RoomTarget).recorder
        fleet = ctx.fleet_rooms if ctx.control is None else None
        if named is not None and fleet is None:
            raise ApiError(
                409, "?recorder= names a recorder of a fleet; this node follows its own SFU", "not-a-fleet"
            )
        if named is None:  # the room's policy is fleet-wide (by room id): not when one recorder is named
            current = policy.room(room)
            await policy.set_room(room, current.model_copy(update={"record": on}))
        if fleet is not None:  # a fleet's API node: the recorders act (recorder/fleet/commands_api.py)
            request = call.body(StartRequest) if on else None
            if request is not None:
                call.detail = {"call_id": request.call_id, "tags": ",".join(sorted(request.metadata))}
            await fleet.switch(call, room, on, request, named)
            out = room_out(room)
            out.recording = on
            return out
        if on:
            request = call.body(StartRequest)
            call.detail = {"call_id": request.call_id, "tags": ",".join(sorted(request.metadata))}
            live = ctx.manager.rooms.get(room)
            if live is not None:  # already recording: the tags and call id go on this recording
                live.info.metadata.update(request.metadata)
                if request.call_id is not None:
                    live.info.call_id = request.call_id
            else:
                policy.pending[room] = request
        if ctx.control is None:
            if on:
                raise ApiError(
                    409, "policy saved, but this service follows no SFU to start recording", "no-sfu"
                )
            await ctx.manager.finish_room(room)
        await apply(call, {room})
        return room_out(room)

    @reg.add(
        "POST",
        "/v1/rooms/{room_id}/start",
        OPERATOR,
        "Record a room from now on (its publishers at once); optional call id and tags",
        TAG,
        "room.start",
        body=StartRequest,
        query=RoomTarget,
        response=RoomOut,
        errors=(404, 409, 502, 503, 504),
    )
    async def start_room(call: Call) -> RoomOut:
        return await switch(call, True)

    @reg.add(
        "POST",
        "/v1/rooms/{room_id}/stop",
        OPERATOR,
        "Stop recording a room (finishes its recording)",
        TAG,
        "room.stop",
        query=RoomTarget,
        response=RoomOut,
        errors=(404, 409, 502, 503, 504),
    )
    async def stop_room(call: Call) -> RoomOut:
        return await switch(call, False)
