"""The durable webhook outbox (SQLite, WAL, synchronous=FULL) and its delivery log.

`add(event, endpoints)` stores the message (id, body bytes) and one delivery per endpoint that wants the
event type, in one transaction, before it returns: a crash or restart loses nothing, and a new dispatcher
on the same file delivers what is pending. Deliveries are ordered per (endpoint, recording): only the
oldest pending delivery of each pair is ever due (`due_heads`), so a later event never overtakes an
earlier one; a delivery given up (failed) no longer holds the queue. Every attempt is logged
(`attempts()`), with time, status code, error and duration.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from recorder.durable_db import DurableDb
from recorder.webhooks.events import WebhookEvent
from recorder.webhooks.settings import WebhookEndpoint
from recorder.webhooks.signing import new_message_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    recording_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    endpoint_id TEXT NOT NULL,
    recording_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (endpoint_id, recording_id, state, id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    attempt INTEGER NOT NULL,
    at REAL NOT NULL,
    status_code INTEGER,
    error TEXT,
    duration_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
"""


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    message_id: int
    msg_id: str
    endpoint_id: str
    recording_id: str
    type: str
    body: bytes
    state: DeliveryState
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    done_at: float | None


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delivery_id: int
    msg_id: str
    endpoint_id: str
    recording_id: str
    type: str
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float


_DELIVERY_SELECT = (
    "SELECT d.*, m.msg_id, m.type, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id"
)


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._store = DurableDb(path, _SCHEMA)
        self._db = self._store.conn
        self._lock = self._store.lock
        self._tx = self._store.tx

    def close(self) -> None:
        self._store.close()

    def add(
        self, event: WebhookEvent, endpoints: Iterable[WebhookEndpoint], msg_id: str | None = None
    ) -> str:
        """Store the event and its deliveries durably; returns the message id (webhook-id). A `msg_id`
        already stored is not added again (publishing an event under a fixed id is idempotent)."""
        return self.store(event, endpoints, msg_id)[0]

    def store(
        self, event: WebhookEvent, endpoints: Iterable[WebhookEndpoint], msg_id: str | None = None
    ) -> tuple[str, bool]:
        """`add`, also saying whether the message is new (False: `msg_id` was stored before)."""
        mid = msg_id or new_message_id()
        now = time.time()
        recording_id = event.data.recording_id
        with self._tx() as db:
            if db.execute("SELECT 1 FROM messages WHERE msg_id = ?", (mid,)).fetchone() is not None:
                return mid, False
            cur = db.execute(
                "INSERT INTO messages (msg_id, recording_id, type, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (mid, recording_id, event.type.value, event.body(), now),
            )
            message_id = cur.lastrowid
            for endpoint in endpoints:
                if endpoint.wants(event.type):
                    db.execute(
                        "INSERT INTO deliveries (message_id, endpoint_id, recording_id, state,"
                        " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                        (message_id, endpoint.id, recording_id, now, now),
                    )
        return mid, True

    def _deliveries(self, where: str, args: tuple[object, ...]) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(f"{_DELIVERY_SELECT} WHERE {where}", args).fetchall()
        return [Delivery.model_validate(dict(r)) for r in rows]

    def due_heads(self, limit: int, now: float | None = None) -> list[Delivery]:
        """The oldest pending delivery of each (endpoint, recording), when its next attempt is due."""
        return self._deliveries(
            "d.state = 'pending' AND d.next_attempt_at <= ? AND d.id = ("
            " SELECT MIN(d2.id) FROM deliveries d2 WHERE d2.state = 'pending'"
            " AND d2.endpoint_id = d.endpoint_id AND d2.recording_id = d.recording_id)"
            " ORDER BY d.id LIMIT ?",
            (time.time() if now is None else now, limit),
        )

    def next_due_at(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) FROM deliveries WHERE state='pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def deliveries(
        self,
        recording_id: str | None = None,
        endpoint_id: str | None = None,
        state: DeliveryState | None = None,
    ) -> list[Delivery]:
        where, args = ["1=1"], []
        for column, value in (
            ("d.recording_id", recording_id),
            ("d.endpoint_id", endpoint_id),
            ("d.state", state),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(str(value))
        return self._deliveries(" AND ".join(where) + " ORDER BY d.id", tuple(args))

    def pending_count(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM deliveries WHERE state='pending'").fetchone()[0]
            )

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        status_code: int | None,
        error: str | None,
        duration_ms: float,
        outcome: DeliveryState,
        retry_at: float | None = None,
    ) -> None:
        """Log one attempt and move the delivery to `outcome` (pending needs `retry_at`)."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO attempts (delivery_id, attempt, at, status_code, error, duration_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (delivery.id, delivery.attempts + 1, now, status_code, error, duration_ms),
            )
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = ?, last_status = ?, last_error = ?,"
                " next_attempt_at = ?, done_at = ? WHERE id = ?",
                (
                    outcome.value,
                    status_code,
                    error,
                    retry_at if retry_at is not None else now,
                    None if outcome is DeliveryState.PENDING else now,
                    delivery.id,
                ),
            )

    def fail(self, delivery: Delivery, error: str) -> None:
        """Give a delivery up without an attempt (its endpoint was removed from the settings)."""
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET state='failed', last_error=?, done_at=? WHERE id=?",
                (error, time.time(), delivery.id),
            )

    def attempts(
        self, recording_id: str | None = None, endpoint_id: str | None = None, msg_id: str | None = None
    ) -> list[Attempt]:
        """The delivery log, oldest first."""
        where, args = ["1=1"], []
        for column, value in (
            ("d.recording_id", recording_id),
            ("d.endpoint_id", endpoint_id),
            ("m.msg_id", msg_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (
            "SELECT a.delivery_id, m.msg_id, d.endpoint_id, d.recording_id, m.type, a.attempt, a.at,"
            " a.status_code, a.error, a.duration_ms FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " JOIN messages m ON m.id = d.message_id WHERE " + " AND ".join(where) + " ORDER BY a.id"
        )
        with self._lock:
            rows = self._db.execute(sql, tuple(args)).fetchall()
        return [Attempt.model_validate(dict(r)) for r in rows]
