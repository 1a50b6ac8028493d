"""The lifecycle's durable state in the catalog database (schema: recorder/api/db.py, migration 5).

Every function here runs on the catalog's worker thread (`Database.run`/`submit`) and takes its
connection. A recording's lifecycle columns:
- `delete_plan` (JSON DeletionPlan), `delete_after` (the whole recording), `next_deletion` (the earliest
  time something of it is due, or a retry time when a deletion was blocked);
- `lifecycle_state`: NULL, or the JSON intent `{"deleting": [names], "whole": bool}` written before the
  first object is removed, so a crash mid-deletion resumes the same deletion at the next start;
- `lifecycle_blocked`: why the last attempt deleted nothing (legal hold, object lock, store unavailable);
- `hold_applied`: the legal hold state last applied to the store's objects (1/0).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from recorder.lifecycle.rules import DeletionPlan, RecordingFacts, RetentionRule

FINISHED_STATES = ("finished", "failed")


class DueRecording(BaseModel):
    """A recording the scheduler should look at now."""

    model_config = ConfigDict(extra="forbid")

    recording_id: str
    room_id: str | None
    status: str
    folder: str
    started_at: float
    legal_hold: bool
    plan: DeletionPlan
    intent: list[str] | None = None
    whole_intent: bool = False


class DeletedObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    deleted_at: float
    rule: str | None


# -- rules -------------------------------------------------------------------------------------------


def load_rules(c: sqlite3.Connection) -> list[RetentionRule]:
    return [
        RetentionRule.model_validate_json(r["rule"])
        for r in c.execute("SELECT rule FROM retention_rules ORDER BY position, rule_id")
    ]


def put_rule(c: sqlite3.Connection, rule: RetentionRule, by: str) -> bool:
    """Insert or replace (keeping its position); True when it is new."""
    row = c.execute("SELECT position FROM retention_rules WHERE rule_id = ?", (rule.rule_id,)).fetchone()
    if row is None:
        top = c.execute("SELECT COALESCE(MAX(position), 0) FROM retention_rules").fetchone()[0]
        position = int(top) + 1
    else:
        position = int(row["position"])
    c.execute(
        "INSERT OR REPLACE INTO retention_rules (rule_id, position, rule, updated_at, updated_by)"
        " VALUES (?, ?, ?, ?, ?)",
        (rule.rule_id, position, rule.model_dump_json(), time.time(), by),
    )
    return row is None


def delete_rule(c: sqlite3.Connection, rule_id: str) -> bool:
    return c.execute("DELETE FROM retention_rules WHERE rule_id = ?", (rule_id,)).rowcount > 0


# -- evaluation ----------------------------------------------------------------------------------------


def facts_batch(c: sqlite3.Connection, after: str, limit: int, only_unplanned: bool) -> list[RecordingFacts]:
    """Finished recordings (not deleted) after `after` in id order, with their recording tags."""
    where = "status IN ('finished', 'failed') AND recording_id > ?"
    if only_unplanned:
        where += " AND delete_plan IS NULL"
    rows = c.execute(
        f"SELECT recording_id, room_id, finished_at, started_at FROM recordings WHERE {where}"
        " ORDER BY recording_id LIMIT ?",
        (after, limit),
    ).fetchall()
    if not rows:
        return []
    ids = [r["recording_id"] for r in rows]
    marks = ",".join("?" * len(ids))
    tags: dict[str, dict[str, str]] = {}
    for t in c.execute(
        f"SELECT recording_id, key, value FROM tags WHERE participant_id = '' AND recording_id IN ({marks})",
        ids,
    ):
        tags.setdefault(t["recording_id"], {})[t["key"]] = t["value"]
    return [
        RecordingFacts(
            recording_id=r["recording_id"],
            room_id=r["room_id"],
            tags=tags.get(r["recording_id"], {}),
            finished_at=r["finished_at"] if r["finished_at"] is not None else r["started_at"],
        )
        for r in rows
    ]


def deleted_kinds(c: sqlite3.Connection, recording_id: str) -> set[str]:
    return {
        r["kind"]
        for r in c.execute("SELECT kind FROM deleted_objects WHERE recording_id = ?", (recording_id,))
    }


def save_plans(c: sqlite3.Connection, plans: list[tuple[str, DeletionPlan]]) -> None:
    """Store each recording's plan; `next_deletion` is the earliest kind it still has that is due (kinds
    whose objects were all deleted already are skipped by the scheduler, which lists what remains)."""
    c.execute("BEGIN IMMEDIATE")
    try:
        for recording_id, plan in plans:
            c.execute(
                "UPDATE recordings SET delete_plan = ?, delete_after = ?, next_deletion = ?,"
                " lifecycle_blocked = NULL WHERE recording_id = ? AND status != 'deleted'",
                (
                    plan.model_dump_json(),
                    plan.delete_after,
                    plan.next_deletion(plan.kinds),
                    recording_id,
                ),
            )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise


# -- deletion ------------------------------------------------------------------------------------------


def due(c: sqlite3.Connection, now: float, limit: int) -> list[DueRecording]:
    """Recordings with a deletion in progress (resumed first), then those due by `now`."""
    rows = c.execute(
        "SELECT * FROM recordings WHERE status IN ('finished', 'failed') AND delete_plan IS NOT NULL"
        " AND (lifecycle_state IS NOT NULL OR next_deletion <= ?)"
        " ORDER BY lifecycle_state IS NULL, next_deletion, recording_id LIMIT ?",  # ties: one order anywhere
        (now, limit),
    ).fetchall()
    out = []
    for r in rows:
        intent = json.loads(r["lifecycle_state"]) if r["lifecycle_state"] else None
        out.append(
            DueRecording(
                recording_id=r["recording_id"],
                room_id=r["room_id"],
                status=r["status"],
                folder=r["folder"],
                started_at=r["started_at"],
                legal_hold=bool(r["legal_hold"]),
                plan=DeletionPlan.model_validate_json(r["delete_plan"]),
                intent=intent["deleting"] if intent else None,
                whole_intent=bool(intent and intent.get("whole")),
            )
        )
    return out


def block(c: sqlite3.Connection, recording_id: str, why: str, retry_at: float) -> None:
    c.execute(
        "UPDATE recordings SET lifecycle_blocked = ?, next_deletion = ? WHERE recording_id = ?",
        (why[:500], retry_at, recording_id),
    )


def begin(c: sqlite3.Connection, recording_id: str, names: list[str], whole: bool) -> None:
    """Durable intent, before the first object is removed."""
    c.execute(
        "UPDATE recordings SET lifecycle_state = ?, lifecycle_blocked = NULL WHERE recording_id = ?",
        (json.dumps({"deleting": names, "whole": whole}), recording_id),
    )


def begin_many(
    c: sqlite3.Connection,
    intents: list[tuple[str, list[str], bool]],
    updates: list[tuple[str, str | None, float | None]],
) -> None:
    """One transaction: the intents of a batch (before anything is removed), and the recordings nothing
    is deleted of now (why, when to look again)."""
    if not intents and not updates:
        return
    c.execute("BEGIN IMMEDIATE")
    try:
        for rid, names, whole in intents:
            begin(c, rid, names, whole)
        for rid, why, retry in updates:
            c.execute(
                "UPDATE recordings SET lifecycle_blocked = ?, next_deletion = ? WHERE recording_id = ?",
                (why[:500] if why else None, retry, rid),
            )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise


def object_deleted(
    c: sqlite3.Connection, recording_id: str, name: str, kind: str, rule: str | None, at: float
) -> None:
    c.execute(
        "INSERT OR IGNORE INTO deleted_objects (recording_id, name, kind, deleted_at, rule)"
        " VALUES (?, ?, ?, ?, ?)",
        (recording_id, name, kind, at, rule),
    )


def finish_partial(c: sqlite3.Connection, recording_id: str, next_deletion: float | None) -> None:
    c.execute(
        "UPDATE recordings SET lifecycle_state = NULL, next_deletion = ? WHERE recording_id = ?",
        (next_deletion, recording_id),
    )


def tombstone(c: sqlite3.Connection, recording_id: str, by: str, at: float) -> None:
    """The recording is gone from the store: it stays in the catalog as a tombstone (status deleted, when,
    by which rule; its deleted objects in `deleted_objects`)."""
    c.execute(
        "UPDATE recordings SET status = 'deleted', deleted_at = ?, deleted_by = ?, updated_at = ?,"
        " lifecycle_state = NULL, next_deletion = NULL, lifecycle_blocked = NULL WHERE recording_id = ?",
        (at, by, at, recording_id),
    )


def deleted_objects(c: sqlite3.Connection, recording_id: str) -> list[DeletedObject]:
    return [
        DeletedObject(name=r["name"], kind=r["kind"], deleted_at=r["deleted_at"], rule=r["rule"])
        for r in c.execute(
            "SELECT * FROM deleted_objects WHERE recording_id = ? ORDER BY name", (recording_id,)
        )
    ]


def lifecycle_row(c: sqlite3.Connection, recording_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = c.execute(
        "SELECT recording_id, room_id, status, folder, started_at, legal_hold, hold_applied, delete_plan,"
        " delete_after, next_deletion, lifecycle_state, lifecycle_blocked, deleted_at, deleted_by"
        " FROM recordings WHERE recording_id = ?",
        (recording_id,),
    ).fetchone()
    return row


def upcoming(c: sqlite3.Connection, until: float, limit: int, offset: int) -> Iterator[sqlite3.Row]:
    """Recordings something of which is due by `until`, soonest first (the dry run)."""
    yield from c.execute(
        "SELECT recording_id, room_id, folder, started_at, legal_hold, delete_plan, next_deletion,"
        " lifecycle_blocked FROM recordings WHERE status IN ('finished', 'failed')"
        " AND next_deletion IS NOT NULL AND next_deletion <= ? ORDER BY next_deletion, recording_id"
        " LIMIT ? OFFSET ?",
        (until, limit, offset),
    )


# -- legal hold ----------------------------------------------------------------------------------------


def hold_pending(c: sqlite3.Connection, limit: int) -> list[tuple[str, bool, str, float, str | None]]:
    """(recording id, hold wanted, folder, started_at, room) where the store lags the catalog."""
    return [
        (r["recording_id"], bool(r["legal_hold"]), r["folder"], r["started_at"], r["room_id"])
        for r in c.execute(
            "SELECT recording_id, legal_hold, folder, started_at, room_id FROM recordings"
            " WHERE legal_hold != hold_applied AND status != 'deleted' LIMIT ?",
            (limit,),
        )
    ]


def held(c: sqlite3.Connection) -> list[tuple[str, bool, float, str | None]]:
    """(recording id, hold in the catalog, started_at, room) of every recording with a hold in the
    catalog or applied to the store (start-up reconciliation)."""
    return [
        (r["recording_id"], bool(r["legal_hold"]), r["started_at"], r["room_id"])
        for r in c.execute(
            "SELECT recording_id, legal_hold, started_at, room_id FROM recordings"
            " WHERE (legal_hold = 1 OR hold_applied = 1) AND status != 'deleted'"
        )
    ]


def hold_applied(c: sqlite3.Connection, recording_id: str, on: bool) -> None:
    c.execute("UPDATE recordings SET hold_applied = ? WHERE recording_id = ?", (int(on), recording_id))
