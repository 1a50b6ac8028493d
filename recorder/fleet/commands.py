"""Room commands across a fleet (docs/fleet.md, "Room control in a fleet"): the `room_commands` rows an API
node writes for a recorder and the recorder's answers, on either dialect. Every function here runs on the
catalog's worker thread with its connection (recorder/api/db.py); times are the database's clock.

A command's life: `pending` (written by the API node, with `expires_at`) -> `taken` (claimed by its
recorder with a conditional UPDATE *before* it acts) -> `done` or `failed` (its result). An API node that
gave up waiting turns a command still `pending` into `expired` with a conditional UPDATE too: of the two
updates exactly one wins, so a command is either executed once or known never to be. A recorder that
restarts turns its commands left `taken` into `failed` (interrupted): never executed a second time.
"""

from __future__ import annotations

import json
import sqlite3
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from recorder.fleet.registry import IN_PROGRESS, NOW

CHANNEL = "callvault_room_commands"
"""PostgreSQL NOTIFY channel: the payload is the recorder's node name (wakes it at once)."""


class Action(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    START = "start"
    STOP = "stop"


class State(StrEnum):
    PENDING = "pending"
    TAKEN = "taken"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"


class Command(BaseModel):
    """What a recorder is asked to do (no secret in it: it is stored in the catalog)."""

    model_config = ConfigDict(extra="forbid")

    command_id: str
    action: Action
    room_id: str
    recording_id: str | None = None
    participant_id: str | None = None
    reason: str | None = None
    call_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    requested_by: str
    requested_from: str


class Result(BaseModel):
    """What the recorder answers: `done` false when there was nothing to act on (no such recording or
    participant in progress there); `error` (with `problem`, the single node's problem type) when it
    could not act."""

    model_config = ConfigDict(extra="forbid")

    done: bool = False
    switched: bool = False
    has_room: bool = False
    error: str | None = None
    problem: str | None = None


class Outcome(BaseModel):
    state: State
    result: Result | None = None


class RecorderState(BaseModel):
    node: str
    alive: bool
    silent_for: float | None = None
    """Seconds since its last heartbeat (None: never registered)."""
    stopped: bool = False


_PARAMS = ("reason", "call_id", "metadata")


def submit(c: sqlite3.Connection, dialect: str, recorder: str, command: Command, timeout: float) -> None:
    """Write the command for `recorder`; it expires `timeout` s from now unless taken before."""
    params = json.dumps({k: getattr(command, k) for k in _PARAMS})
    c.execute(
        "INSERT INTO room_commands (command_id, recorder, action, room_id, recording_id, participant_id,"
        " params, requested_by, requested_from, state, result, created_at, expires_at, taken_at,"
        f" finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, {NOW[dialect]}, {NOW[dialect]} + ?,"
        " NULL, NULL)",
        (
            command.command_id,
            recorder,
            command.action.value,
            command.room_id,
            command.recording_id,
            command.participant_id,
            params,
            command.requested_by,
            command.requested_from,
            State.PENDING.value,
            float(timeout),
        ),
    )
    if dialect == "postgresql":
        c.execute("SELECT pg_notify(?, ?)", (CHANNEL, recorder))


def outcome(c: sqlite3.Connection, command_id: str) -> Outcome:
    row = c.execute("SELECT state, result FROM room_commands WHERE command_id = ?", (command_id,)).fetchone()
    if row is None:
        raise KeyError(command_id)
    result = Result.model_validate_json(row["result"]) if row["result"] else None
    return Outcome(state=State(row["state"]), result=result)


def expire(c: sqlite3.Connection, dialect: str, command_id: str) -> bool:
    """The API node gives up: True when the command was still pending (it will never run now)."""
    cursor = c.execute(
        f"UPDATE room_commands SET state = ?, finished_at = {NOW[dialect]}"
        " WHERE command_id = ? AND state = ?",
        (State.EXPIRED.value, command_id, State.PENDING.value),
    )
    return cursor.rowcount == 1


def take(c: sqlite3.Connection, dialect: str, recorder: str) -> list[Command]:
    """The recorder claims its pending, unexpired commands, oldest first; only those it won are returned
    (each claim is one conditional UPDATE, committed before the command is acted on)."""
    rows = c.execute(
        "SELECT * FROM room_commands WHERE recorder = ? AND state = ? ORDER BY created_at, command_id",
        (recorder, State.PENDING.value),
    ).fetchall()
    taken = []
    for row in rows:
        cursor = c.execute(
            f"UPDATE room_commands SET state = ?, taken_at = {NOW[dialect]}"
            f" WHERE command_id = ? AND state = ? AND expires_at > {NOW[dialect]}",
            (State.TAKEN.value, row["command_id"], State.PENDING.value),
        )
        if cursor.rowcount != 1:
            continue
        params = json.loads(row["params"])
        taken.append(
            Command(
                command_id=row["command_id"],
                action=Action(row["action"]),
                room_id=row["room_id"],
                recording_id=row["recording_id"],
                participant_id=row["participant_id"],
                reason=params.get("reason"),
                call_id=params.get("call_id"),
                metadata=params.get("metadata") or {},
                requested_by=row["requested_by"],
                requested_from=row["requested_from"],
            )
        )
    return taken


def finish(c: sqlite3.Connection, dialect: str, command_id: str, result: Result) -> None:
    state = State.FAILED if result.error is not None else State.DONE
    c.execute(
        f"UPDATE room_commands SET state = ?, result = ?, finished_at = {NOW[dialect]}"
        " WHERE command_id = ? AND state = ?",
        (state.value, result.model_dump_json(), command_id, State.TAKEN.value),
    )


def interrupted(c: sqlite3.Connection, dialect: str, recorder: str) -> int:
    """At a recorder's start: its commands an earlier run took and never answered are failed, not run
    again (the earlier run may or may not have acted before it died)."""
    result = Result(
        error="the recorder restarted while executing this command: not known whether it acted",
        problem="interrupted",
    )
    cursor = c.execute(
        f"UPDATE room_commands SET state = ?, result = ?, finished_at = {NOW[dialect]}"
        " WHERE recorder = ? AND state = ?",
        (State.FAILED.value, result.model_dump_json(), recorder, State.TAKEN.value),
    )
    return int(cursor.rowcount)


def prune(c: sqlite3.Connection, dialect: str, recorder: str, older_than: float) -> int:
    """Forget this recorder's commands older than `older_than` seconds that are over: answered, expired,
    or pending past their expiry (the API node that wrote them gone); the audit log keeps what was asked."""
    cursor = c.execute(
        "DELETE FROM room_commands WHERE recorder = ? AND (state NOT IN (?, ?) OR (state = ? AND"
        f" expires_at < {NOW[dialect]})) AND created_at < {NOW[dialect]} - ?",
        (recorder, State.PENDING.value, State.TAKEN.value, State.PENDING.value, float(older_than)),
    )
    return int(cursor.rowcount)


def recorder_state(c: sqlite3.Connection, dialect: str, node: str, dead_after: float) -> RecorderState:
    row = c.execute(
        f"SELECT stopped_at, {NOW[dialect]} - heartbeat_at AS silent FROM recorders WHERE node = ?", (node,)
    ).fetchone()
    if row is None:
        return RecorderState(node=node, alive=False)
    silent = float(row["silent"])
    stopped = row["stopped_at"] is not None
    return RecorderState(
        node=node, alive=not stopped and silent < dead_after, silent_for=silent, stopped=stopped
    )


def live_recorders(c: sqlite3.Connection, dialect: str, dead_after: float) -> list[str]:
    rows = c.execute(
        f"SELECT node FROM recorders WHERE stopped_at IS NULL AND {NOW[dialect]} - heartbeat_at < ?"
        " ORDER BY node",
        (float(dead_after),),
    )
    return [str(r["node"]) for r in rows]


class InProgress(BaseModel):
    recording_id: str
    room_id: str | None
    recorder: str | None


def recording(c: sqlite3.Connection, recording_id: str) -> InProgress | None:
    """The recording if it is in progress (recording or paused), with its room and recorder."""
    row = c.execute(
        "SELECT recording_id, room_id, recorder FROM recordings WHERE recording_id = ? AND status IN (?, ?)",
        (recording_id, *IN_PROGRESS),
    ).fetchone()
    if row is None:
        return None
    return InProgress(recording_id=row["recording_id"], room_id=row["room_id"], recorder=row["recorder"])


def room_recordings(c: sqlite3.Connection, room: str) -> list[InProgress]:
    """The room's recordings in progress across the fleet (two SFUs may each have a room with this id)."""
    rows = c.execute(
        "SELECT recording_id, room_id, recorder FROM recordings WHERE room_id = ? AND status IN (?, ?)"
        " ORDER BY recorder, recording_id",
        (room, *IN_PROGRESS),
    )
    return [
        InProgress(recording_id=r["recording_id"], room_id=r["room_id"], recorder=r["recorder"]) for r in rows
    ]
