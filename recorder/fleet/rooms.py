"""The rooms each recorder of a fleet records now, as it sees them (docs/fleet.md, "Live rooms on an API
node"): the recorder writes them into its own row of the catalog (`recorders.rooms`, JSON, migration 0011)
when they change and with every heartbeat; an API node that follows no SFU lists them (GET /v1/rooms).

A recorder that stops cleanly empties its rooms; one that dies leaves them behind, and the API shows them
as its state says (`dead`: nothing in progress there), never as live forever: its row's state is judged by
the heartbeat, on the database's clock, as GET /v1/recorders judges it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from recorder.api.models import LiveParticipant
from recorder.fleet import registry
from recorder.fleet.models import NodeState, Registration

if TYPE_CHECKING:
    from recorder.service.manager import RecordingManager, RoomRecording


class LiveRoom(BaseModel):
    """A room a recorder records now."""

    model_config = ConfigDict(extra="forbid")

    room_id: str
    recording_id: str
    paused: bool
    participants: list[LiveParticipant]


class PublishedRooms(BaseModel):
    """`recorders.rooms`: what one recorder wrote."""

    model_config = ConfigDict(extra="forbid")

    rooms: list[LiveRoom] = Field(default_factory=list)


class RecorderRooms(BaseModel):
    """One recorder's rooms as an API node reads them, with the recorder's state."""

    model_config = ConfigDict(extra="forbid")

    node: str
    state: NodeState
    rooms: list[LiveRoom]


def live_room(room: str, recording: RoomRecording) -> LiveRoom:
    """A room being recorded, as its recorder's own API shows it."""
    paused = recording.paused is not None
    names = {p.id: p.display_name for p in recording.info.participants}
    return LiveRoom(
        room_id=room,
        recording_id=recording.info.recording_id,
        paused=paused,
        participants=[
            LiveParticipant(
                id=pid,
                display_name=names.get(pid),
                paused=paused or pid in recording.open_pauses,
                tracks=[s.track for s in streams],
            )
            for pid, streams in recording.participants.items()
        ],
    )


def snapshot(manager: RecordingManager) -> list[LiveRoom]:
    """The rooms this recorder records now (not those finishing), in room order."""
    return [live_room(room, r) for room, r in sorted(manager.rooms.items()) if not r.finishing]


def publish(c: sqlite3.Connection, dialect: str, me: Registration, rooms: list[LiveRoom]) -> None:
    """Write this run's rooms into its row (nothing when another run holds the name)."""
    c.execute(
        f"UPDATE recorders SET rooms = ?, rooms_at = {registry.NOW[dialect]}"
        " WHERE node = ? AND incarnation = ?",
        (PublishedRooms(rooms=rooms).model_dump_json(), me.node, me.incarnation),
    )


def read(c: sqlite3.Connection, dialect: str, dead_after: float) -> list[RecorderRooms]:
    """Every recorder's rooms, by node name, with its state: what a recorder that is not alive wrote last
    is not in progress any more (a dead one's recordings are failed by the fleet)."""
    at = registry.now(c, dialect)
    return [
        RecorderRooms(
            node=r["node"],
            state=registry.state_of(r, at, dead_after),
            rooms=PublishedRooms.model_validate_json(r["rooms"]).rooms if r["rooms"] else [],
        )
        for r in c.execute(
            "SELECT node, heartbeat_at, stopped_at, dead_at, rooms FROM recorders ORDER BY node"
        )
    ]
