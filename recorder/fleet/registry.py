"""The fleet's rows in the catalog (recorders, recordings.recorder/failure, recording_segments), on either
dialect. Every function here runs on the catalog's worker thread with its connection (recorder/api/db.py).

Times are the database's clock (one clock for the whole fleet: a recorder's skewed clock cannot make it
look dead). The catalog row is the single point of truth: a peer marks a silent recorder's recordings
failed with one conditional UPDATE, inside BEGIN IMMEDIATE (the fleet-wide write lock), only while that
recorder's run is still the silent one; a recorder that registers again takes the same lock first, so
from then on no peer can mark its recordings, and its recovery (resumed or finished recordings) writes
over a mark made before it came back.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from enum import StrEnum

from recorder.api.audit import AuditLog, DetailValue
from recorder.errors import CallVaultError
from recorder.fleet.models import (
    FailedRecording,
    NodeState,
    RecorderList,
    RecorderOut,
    RecordingFailure,
    RecoveredSegment,
    Registration,
)

IN_PROGRESS = ("recording", "paused")
NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())::double precision",
}
"""Unix seconds by the database's clock."""


class NodeNameInUseError(CallVaultError):
    """Another recorder holds this node name and is alive."""


def now(c: sqlite3.Connection, dialect: str) -> float:
    return float(c.execute(f"SELECT {NOW[dialect]}").fetchone()[0])


def register(
    c: sqlite3.Connection,
    dialect: str,
    me: Registration,
    dead_after: float,
    previous: str | None,
    keep: set[str] | None = None,
    audit: AuditLog | None = None,
) -> list[FailedRecording]:
    """Take the node name for this run, unless another live recorder holds it (`previous`: the token of
    this node's earlier run on this data_dir, which may take its own name back at once after a crash).

    `keep`: the recordings this run will take up (its state file's); every other recording of this node
    still in progress cannot be finished by anybody (its earlier run's data folder was lost, or its finish
    never reached the catalog): marked failed now with what was recovered, never left `recording`."""
    c.execute("BEGIN IMMEDIATE")
    try:
        at = now(c, dialect)
        row = c.execute("SELECT * FROM recorders WHERE node = ?", (me.node,)).fetchone()
        if (
            row is not None
            and row["stopped_at"] is None
            and at - row["heartbeat_at"] < dead_after
            and row["incarnation"] != previous
        ):
            raise NodeNameInUseError(
                f"recorder node name {me.node!r} is in use by a running recorder (SFU {row['sfu']}, last"
                f" heartbeat {max(0.0, at - row['heartbeat_at']):.0f} s ago): give this one another"
                " fleet.node_name, or stop the other one"
            )
        c.execute(
            "INSERT INTO recorders (node, incarnation, sfu, rtp_port_min, rtp_port_max, version, started_at,"
            " heartbeat_at, stopped_at, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
            " ON CONFLICT (node) DO UPDATE SET incarnation = excluded.incarnation, sfu = excluded.sfu,"
            " rtp_port_min = excluded.rtp_port_min, rtp_port_max = excluded.rtp_port_max,"
            " version = excluded.version, started_at = excluded.started_at,"
            " heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, dead_at = NULL, rooms = NULL,"
            " rooms_at = NULL",
            (me.node, me.incarnation, me.sfu, me.rtp_port_min, me.rtp_port_max, me.version, at, at),
        )
        failed: list[FailedRecording] = []
        if keep is not None and audit is not None:
            last = datetime.fromtimestamp(row["heartbeat_at"] if row is not None else at, UTC)
            for r in c.execute(
                "SELECT recording_id, room_id, call_id FROM recordings"
                " WHERE recorder = ? AND status IN (?, ?)",
                (me.node, *IN_PROGRESS),
            ).fetchall():
                if r["recording_id"] in keep:
                    continue
                failure = RecordingFailure(
                    reason=f"its recorder {me.node} restarted without it (not in its state: its data folder"
                    " was lost, or its end never reached the catalog)",
                    recorder=me.node,
                    last_heartbeat_at=last,
                    detected_by=me.node,
                    detected_at=datetime.fromtimestamp(at, UTC),
                    segments=_segments(c, r["recording_id"]),
                )
                cursor = c.execute(
                    "UPDATE recordings SET status = 'failed', failure = ?, updated_at = ?"
                    " WHERE recording_id = ? AND recorder = ? AND status IN (?, ?)",
                    (failure.model_dump_json(), at, r["recording_id"], me.node, *IN_PROGRESS),
                )
                if cursor.rowcount == 1:
                    failed.append(
                        FailedRecording(
                            recording_id=r["recording_id"],
                            room_id=r["room_id"],
                            call_id=r["call_id"],
                            failure=failure,
                        )
                    )
            _audit_failed(audit, me.node, failed)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return failed


def _segments(c: sqlite3.Connection, recording_id: str) -> list[RecoveredSegment]:
    return [
        RecoveredSegment(track=s["track"], index=s["idx"], path=s["path"], size=s["size"], sha256=s["sha256"])
        for s in c.execute(
            "SELECT * FROM recording_segments WHERE recording_id = ? ORDER BY track, idx", (recording_id,)
        )
    ]


def _audit_failed(audit: AuditLog, by: str, failed: list[FailedRecording]) -> None:
    """(inside the caller's transaction) One recording.failed entry per recording marked failed."""
    if failed:
        audit.append_many_in(
            [
                (
                    by,
                    None,
                    "recording.failed",
                    f.recording_id,
                    "failed",
                    None,
                    {
                        "reason": f.failure.reason,
                        "recorder": f.failure.recorder,
                        "segments_recovered": len(f.failure.segments),
                        "bytes_recovered": sum(s.size for s in f.failure.segments),
                    },
                )
                for f in failed
            ]
        )


class Beat(StrEnum):
    """What a heartbeat found of this run's row."""

    HELD = "held"
    """Alive, as the fleet knew it."""
    REVIVED = "revived"
    """A peer had found it silent and marked it dead (`dead_at`); its name is still its own: mark lifted."""
    LOST = "lost"
    """Another run of its node name registered after it was found dead: the name is no longer its own."""


def heartbeat(c: sqlite3.Connection, dialect: str, me: Registration) -> Beat:
    """This run is alive now. The heartbeat is written first and the dead mark lifted after it: a peer's
    reaping can set `dead_at` only while the heartbeat is old, so a mark made before this beat is seen here
    (REVIVED) and none can follow it."""
    cursor = c.execute(
        f"UPDATE recorders SET heartbeat_at = {NOW[dialect]} WHERE node = ? AND incarnation = ?",
        (me.node, me.incarnation),
    )
    if cursor.rowcount != 1:
        return Beat.LOST
    cursor = c.execute(
        "UPDATE recorders SET dead_at = NULL WHERE node = ? AND incarnation = ? AND dead_at IS NOT NULL",
        (me.node, me.incarnation),
    )
    return Beat.REVIVED if cursor.rowcount == 1 else Beat.HELD


def leave(c: sqlite3.Connection, dialect: str, me: Registration) -> None:
    """A clean stop: the row says `stopped`, and it records no room any more."""
    c.execute(
        f"UPDATE recorders SET stopped_at = {NOW[dialect]}, rooms = NULL, rooms_at = NULL"
        " WHERE node = ? AND incarnation = ?",
        (me.node, me.incarnation),
    )


def claim(c: sqlite3.Connection, recording_id: str, node: str) -> None:
    """A recording started (or resumed) on `node`: it is this node's to finish."""
    c.execute("UPDATE recordings SET recorder = ? WHERE recording_id = ?", (node, recording_id))


def add_segment(c: sqlite3.Connection, dialect: str, recording_id: str, segment: RecoveredSegment) -> None:
    c.execute(
        "INSERT OR IGNORE INTO recording_segments (recording_id, track, idx, path, size, sha256, closed_at)"
        f" VALUES (?, ?, ?, ?, ?, ?, {NOW[dialect]})",
        (recording_id, segment.track, segment.index, segment.path, segment.size, segment.sha256),
    )


def recovered(c: sqlite3.Connection, recording_id: str, node: str, audit: AuditLog) -> None:
    """Its own recorder finished or resumed a recording a peer had marked failed: the mark is lifted (the
    recording's status is the recorder's), and the audit log says so."""
    row = c.execute(
        "SELECT failure FROM recordings WHERE recording_id = ? AND failure IS NOT NULL", (recording_id,)
    ).fetchone()
    if row is None:
        return
    c.execute("BEGIN IMMEDIATE")
    try:
        cursor = c.execute(
            "UPDATE recordings SET failure = NULL WHERE recording_id = ? AND failure IS NOT NULL",
            (recording_id,),
        )
        if cursor.rowcount == 1:
            earlier = RecordingFailure.model_validate_json(row["failure"])
            detail: dict[str, DetailValue] = {"recorder": node, "marked_failed_by": earlier.detected_by}
            audit.append_many_in([(node, None, "recording.recovered", recording_id, "ok", None, detail)])
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise


def list_recorders(c: sqlite3.Connection, dialect: str, dead_after: float) -> RecorderList:
    at = now(c, dialect)
    busy = {
        r["recorder"]: int(r["n"])
        for r in c.execute(
            "SELECT recorder, COUNT(*) AS n FROM recordings WHERE recorder IS NOT NULL"
            " AND status IN (?, ?) GROUP BY recorder",
            IN_PROGRESS,
        )
    }
    out = []
    for r in c.execute("SELECT * FROM recorders ORDER BY node"):
        state = state_of(r, at, dead_after)
        out.append(
            RecorderOut(
                node=r["node"],
                sfu=r["sfu"],
                rtp_port_min=r["rtp_port_min"],
                rtp_port_max=r["rtp_port_max"],
                version=r["version"],
                started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"],
                stopped_at=r["stopped_at"],
                dead_at=r["dead_at"],
                state=state,
                recordings_in_progress=busy.get(r["node"], 0),
            )
        )
    return RecorderList(
        recorders=out,
        alive=sum(r.state == "alive" for r in out),
        dead=sum(r.state == "dead" for r in out),
    )


def state_of(row: sqlite3.Row, at: float, dead_after: float) -> NodeState:
    """A recorder's state from its row (stopped_at, dead_at, heartbeat_at) at `at`, the database's time."""
    if row["stopped_at"] is not None:
        return "stopped"
    if row["dead_at"] is not None or at - row["heartbeat_at"] >= dead_after:
        return "dead"
    return "alive"


def reap(
    c: sqlite3.Connection, dialect: str, me: str, dead_after: float, audit: AuditLog, by: str = ""
) -> tuple[list[str], list[FailedRecording]]:
    """Find the recorders silent for `dead_after` s (other than `me`); mark their recordings in progress
    failed, each with the segments recovered and an audit entry. Returns (nodes found dead now, recordings
    marked failed now)."""
    at = now(c, dialect)
    horizon = at - dead_after
    suspects = c.execute(
        "SELECT r.recording_id FROM recordings r JOIN recorders n ON n.node = r.recorder"
        " WHERE r.status IN (?, ?) AND n.node != ? AND n.heartbeat_at < ?",
        (*IN_PROGRESS, me, horizon),
    ).fetchall()
    newly_dead = c.execute(
        "SELECT node FROM recorders WHERE node != ? AND stopped_at IS NULL AND dead_at IS NULL"
        " AND heartbeat_at < ?",
        (me, horizon),
    ).fetchall()
    if not suspects and not newly_dead:
        return [], []
    c.execute("BEGIN IMMEDIATE")
    try:
        at = now(c, dialect)
        horizon = at - dead_after
        dead_nodes = [
            str(r["node"])
            for r in c.execute(
                "SELECT node FROM recorders WHERE node != ? AND stopped_at IS NULL AND dead_at IS NULL"
                " AND heartbeat_at < ?",
                (me, horizon),
            )
        ]
        c.execute(
            "UPDATE recorders SET dead_at = ? WHERE node != ? AND stopped_at IS NULL AND dead_at IS NULL"
            " AND heartbeat_at < ?",
            (at, me, horizon),
        )
        rows = c.execute(
            "SELECT r.recording_id, r.room_id, r.call_id, r.recorder, n.incarnation, n.heartbeat_at"
            " FROM recordings r JOIN recorders n ON n.node = r.recorder"
            " WHERE r.status IN (?, ?) AND n.node != ? AND n.heartbeat_at < ?",
            (*IN_PROGRESS, me, horizon),
        ).fetchall()
        failed: list[FailedRecording] = []
        for row in rows:
            rid = row["recording_id"]
            segments = _segments(c, rid)
            silent = at - row["heartbeat_at"]
            failure = RecordingFailure(
                reason=f"its recorder {row['recorder']} went silent (no heartbeat for {silent:.0f} s)",
                recorder=row["recorder"],
                last_heartbeat_at=row["heartbeat_at"],
                detected_by=by or me or "api",
                detected_at=datetime.fromtimestamp(at, UTC),
                segments=segments,
            )
            cursor = c.execute(  # conditional: still in progress, still that silent run of its recorder
                "UPDATE recordings SET status = 'failed', failure = ?, updated_at = ? WHERE recording_id = ?"
                " AND status IN (?, ?) AND recorder = ? AND EXISTS (SELECT 1 FROM recorders WHERE node = ?"
                " AND incarnation = ? AND heartbeat_at < ?)",
                (
                    failure.model_dump_json(),
                    at,
                    rid,
                    *IN_PROGRESS,
                    row["recorder"],
                    row["recorder"],
                    row["incarnation"],
                    horizon,
                ),
            )
            if cursor.rowcount == 1:
                failed.append(
                    FailedRecording(
                        recording_id=rid, room_id=row["room_id"], call_id=row["call_id"], failure=failure
                    )
                )
        _audit_failed(audit, by or me or "api", failed)
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return dead_nodes, failed
