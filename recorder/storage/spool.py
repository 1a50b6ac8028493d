"""The durable local upload spool: what must still reach the object store, and how full the disk is.

Jobs live in a SQLite database (`<dir>/spool.sqlite3`, WAL journal, `synchronous=FULL`): `enqueue`
returns only once the job is on disk, so a crash or restart never loses one; an `Uploader`
(recorder/storage/uploader.py) started on the same folder later resumes every pending job. Jobs are
retried until they succeed (nothing is dropped); only a job whose local file disappeared, or changed
after it was enqueued with a hash, ends as `failed`, and failures show in `health()`.

Disk: recordings are written under `recording_folder(id)` inside the spool folder. `used_bytes()` is what
the folder holds plus pending files enqueued from outside it. Above `high_water * max_bytes` (or with less
than `min_free_bytes` free on the disk) `can_accept_new_recording()` says no, so running recordings keep
the room between the high-water mark and the hard limit; at `max_bytes` the spool is `over_limit`, an
alarm (`health().reason`, one log line per change). Running recordings are never refused an enqueue.

All methods are synchronous and short (one SQLite transaction or one folder walk); they are safe to call
from several threads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from recorder.durable_db import DurableDb
from recorder.storage.keys import check_id, check_name
from recorder.storage.settings import SpoolSettings

log = logging.getLogger(__name__)

DB_NAME = "spool.sqlite3"
RECORDINGS_DIR = "recordings"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recording_id TEXT,
    local_path TEXT NOT NULL,
    key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    sha256 TEXT,
    delete_after INTEGER NOT NULL,
    outside INTEGER NOT NULL,
    size INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    uploaded_sha256 TEXT,
    created_at REAL NOT NULL,
    done_at REAL,
    priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS jobs_recording ON jobs (recording_id, state);
"""


class JobState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class UploadJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int
    recording_id: str | None
    local_path: Path
    key: str
    content_type: str
    metadata: dict[str, str] = Field(default_factory=dict)
    sha256: str | None = Field(default=None, description="Expected hash, when the enqueuer knew it.")
    delete_after: bool
    size: int
    state: JobState
    attempts: int
    next_attempt_at: float
    last_error: str | None
    uploaded_sha256: str | None
    created_at: float
    done_at: float | None
    priority: int = Field(
        default=0, description="Higher goes first: a finishing recording's objects before running calls'."
    )


class SpoolHealth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="False when over the limit, refusing recordings, or jobs failed.")
    accepting: bool = Field(description="Whether a new recording may start.")
    over_limit: bool
    reason: str = Field(description="'ok' or why not, in one line.")
    used_bytes: int
    max_bytes: int
    high_water_bytes: int
    free_disk_bytes: int
    pending_jobs: int
    failed_jobs: int
    oldest_pending_seconds: float | None


class Spool:
    def __init__(self, settings: SpoolSettings) -> None:
        self.settings = settings
        self.dir = settings.dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._store = DurableDb(self.dir / DB_NAME, _SCHEMA)
        self._db = self._store.conn
        self._lock = self._store.lock
        self._tx = self._store.tx
        with self._tx() as db:  # spools written before jobs had a priority
            columns = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            if "priority" not in columns:
                db.execute("ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        self._listeners: list[Callable[[], None]] = []
        self._alarm: str | None = None
        self._root = self.dir.resolve()

    def close(self) -> None:
        self._store.close()

    def add_listener(self, wake: Callable[[], None]) -> None:
        """`wake()` is called (from the enqueuing thread) after every enqueue."""
        self._listeners.append(wake)

    def recording_folder(self, recording_id: str) -> Path:
        """Where a recording's files should be written, so they count against the spool's limit."""
        return self.dir / RECORDINGS_DIR / check_id(recording_id)

    # -- jobs -----------------------------------------------------------------------------------------

    def enqueue(
        self,
        local_path: Path,
        key: str,
        content_type: str = "application/octet-stream",
        *,
        recording_id: str | None = None,
        metadata: dict[str, str] | None = None,
        sha256: str | None = None,
        delete_after_upload: bool | None = None,
        priority: int = 0,
    ) -> int:
        """Record an upload durably and return its job id. A pending job for the same key is replaced
        (a file re-written before it went up is uploaded once, in its latest form). Due jobs go up in
        order of `priority` (higher first), then of their due time."""
        check_name(key)
        size = local_path.stat().st_size
        path = local_path.resolve()
        outside = not path.is_relative_to(self._root)
        delete_after = (
            self.settings.delete_after_upload if delete_after_upload is None else delete_after_upload
        )
        now = time.time()
        values = (
            recording_id,
            str(path),
            content_type,
            json.dumps(metadata or {}, sort_keys=True),
            sha256,
            int(delete_after),
            int(outside),
            size,
            priority,
        )
        with self._tx() as db:
            row = db.execute("SELECT id FROM jobs WHERE key = ? AND state = 'pending'", (key,)).fetchone()
            if row is not None:
                job_id = int(row["id"])
                db.execute(
                    "UPDATE jobs SET recording_id=?, local_path=?, content_type=?, metadata=?, sha256=?,"
                    " delete_after=?, outside=?, size=?, priority=?, attempts=0, next_attempt_at=?,"
                    " last_error=NULL"
                    " WHERE id=?",
                    (*values, now, job_id),
                )
            else:
                cur = db.execute(
                    "INSERT INTO jobs (recording_id, local_path, content_type, metadata, sha256,"
                    " delete_after, outside, size, priority, key, state, next_attempt_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                    (*values, key, now, now),
                )
                job_id = int(cur.lastrowid or 0)
        for wake in self._listeners:
            wake()
        return job_id

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[UploadJob]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_job(r) for r in rows]

    def prioritize(self, recording_id: str, priority: int = 1) -> int:
        """Raise the recording's pending jobs to at least `priority` (it finished: its last objects go
        before the segments of calls still running); returns how many were raised."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET priority=? WHERE recording_id=? AND state='pending' AND priority<?",
                (priority, recording_id, priority),
            )
            return int(cur.rowcount)

    def due_jobs(self, limit: int, now: float | None = None) -> list[UploadJob]:
        """Pending jobs whose next attempt is due, highest priority first, then oldest first."""
        return self._query(
            "SELECT * FROM jobs WHERE state='pending' AND next_attempt_at <= ?"
            " ORDER BY priority DESC, next_attempt_at, id LIMIT ?",
            (time.time() if now is None else now, limit),
        )

    def next_due_at(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_attempt_at) AS t FROM jobs WHERE state='pending'"
            ).fetchone()
        return None if row["t"] is None else float(row["t"])

    def jobs(self, state: JobState | None = None, recording_id: str | None = None) -> list[UploadJob]:
        sql, args = "SELECT * FROM jobs WHERE 1=1", []
        if state is not None:
            sql += " AND state=?"
            args.append(state.value)
        if recording_id is not None:
            sql += " AND recording_id=?"
            args.append(recording_id)
        return self._query(sql + " ORDER BY id", tuple(args))

    def get(self, job_id: int) -> UploadJob | None:
        found = self._query("SELECT * FROM jobs WHERE id=?", (job_id,))
        return found[0] if found else None

    def pending_count(self, recording_id: str | None = None) -> int:
        with self._lock:
            if recording_id is None:
                row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state='pending'").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state='pending' AND recording_id=?", (recording_id,)
                ).fetchone()
        return int(row[0])

    def mark_done(self, job_id: int, uploaded_sha256: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='done', done_at=?, uploaded_sha256=?, last_error=NULL WHERE id=?",
                (time.time(), uploaded_sha256, job_id),
            )

    def mark_retry(self, job_id: int, error: str, delay: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET attempts=attempts+1, last_error=?, next_attempt_at=? WHERE id=?",
                (error, time.time() + delay, job_id),
            )

    def mark_failed(self, job_id: int, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='failed', attempts=attempts+1, last_error=?, done_at=? WHERE id=?",
                (error, time.time(), job_id),
            )
        log.error("spool: upload job %d failed for good: %s", job_id, error)

    def retry_failed(self) -> int:
        """Put failed jobs back in the queue (after an operator fixed the cause). Returns how many."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state='pending', attempts=0, next_attempt_at=? WHERE state='failed'",
                (time.time(),),
            )
        for wake in self._listeners:
            wake()
        return cur.rowcount

    def forget_done(self, older_than: float = 0.0) -> int:
        """Drop finished jobs from the database (they are history only)."""
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM jobs WHERE state='done' AND done_at <= ?", (time.time() - older_than,)
            )
        return cur.rowcount

    # -- disk -----------------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        total = 0
        stack = [str(self.dir)]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(size), 0) FROM jobs WHERE state='pending' AND outside=1"
            ).fetchone()
        return total + int(row[0])

    @property
    def high_water_bytes(self) -> int:
        return int(self.settings.max_bytes * self.settings.high_water)

    @property
    def over_limit(self) -> bool:
        return self.used_bytes() >= self.settings.max_bytes

    def can_accept_new_recording(self) -> bool:
        """False above the high-water mark or when the disk is nearly full (see `health().reason`)."""
        return self.health().accepting

    def health(self) -> SpoolHealth:
        used = self.used_bytes()
        free = shutil.disk_usage(self.dir).free
        with self._lock:
            pending, oldest = self._db.execute(
                "SELECT COUNT(*), MIN(created_at) FROM jobs WHERE state='pending'"
            ).fetchone()
            failed = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state='failed'").fetchone()[0]
        over = used >= self.settings.max_bytes
        high = used >= self.high_water_bytes
        low_disk = free < self.settings.min_free_bytes
        if over:
            reason = (
                f"spool over limit: {used} of {self.settings.max_bytes} bytes used; refusing new recordings"
            )
        elif high:
            reason = (
                f"spool above high-water mark: {used} of {self.settings.max_bytes} bytes used"
                f" (mark {self.high_water_bytes}); refusing new recordings"
            )
        elif low_disk:
            reason = (
                f"disk nearly full: {free} bytes free, need {self.settings.min_free_bytes};"
                " refusing new recordings"
            )
        elif failed:
            reason = f"{failed} upload jobs failed"
        else:
            reason = "ok"
        self._note_alarm(None if reason == "ok" else reason)
        return SpoolHealth(
            ok=reason == "ok",
            accepting=not (over or high or low_disk),
            over_limit=over,
            reason=reason,
            used_bytes=used,
            max_bytes=self.settings.max_bytes,
            high_water_bytes=self.high_water_bytes,
            free_disk_bytes=free,
            pending_jobs=int(pending),
            failed_jobs=int(failed),
            oldest_pending_seconds=None if oldest is None else max(0.0, time.time() - float(oldest)),
        )

    def _note_alarm(self, reason: str | None) -> None:
        kind = None if reason is None else reason.split(":", 1)[0]
        old = None if self._alarm is None else self._alarm.split(":", 1)[0]
        if kind != old:
            if reason is None:
                log.info("spool ok again: %s", self.dir)
            else:
                log.warning("%s (%s)", reason, self.dir)
        self._alarm = reason


def _job(row: sqlite3.Row) -> UploadJob:
    return UploadJob(
        id=row["id"],
        recording_id=row["recording_id"],
        local_path=Path(row["local_path"]),
        key=row["key"],
        content_type=row["content_type"],
        metadata=json.loads(row["metadata"]),
        sha256=row["sha256"],
        delete_after=bool(row["delete_after"]),
        size=row["size"],
        state=JobState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        uploaded_sha256=row["uploaded_sha256"],
        created_at=row["created_at"],
        done_at=row["done_at"],
        priority=row["priority"],
    )
