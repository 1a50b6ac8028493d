"""The catalog database: one SQLite file (or a PostgreSQL database, api.catalog_url), schema migrations
(SQLite's first seven by `PRAGMA user_version`, then Alembic's for both: recorder/db/schema.py), and a single
worker thread that runs every statement, so the event loop never blocks on disk and writes keep the order
in which they were submitted (a sink's `recording_started` lands before its `recording_finished`)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar, cast

from recorder.db.revision import HEAD, SchemaTooNewError, stored_revision
from recorder.db.url import CatalogLocation, Dialect, parse_catalog_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# Migration N brings the schema from version N-1 to N. Append only: never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    # 1: recordings, their participants, tags, pauses and tracks
    """
    CREATE TABLE recordings (
        recording_id TEXT PRIMARY KEY,
        room_id TEXT,
        call_id TEXT,
        folder TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        duration REAL,
        tracks INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE INDEX recordings_started ON recordings (started_at DESC, recording_id DESC);
    CREATE INDEX recordings_room ON recordings (room_id, started_at);
    CREATE INDEX recordings_call ON recordings (call_id);
    CREATE TABLE participants (
        recording_id TEXT NOT NULL REFERENCES recordings (recording_id),
        participant_id TEXT NOT NULL,
        display_name TEXT,
        joined_at REAL,
        left_at REAL,
        PRIMARY KEY (recording_id, participant_id)
    );
    CREATE INDEX participants_id ON participants (participant_id);
    CREATE TABLE tags (
        recording_id TEXT NOT NULL REFERENCES recordings (recording_id),
        participant_id TEXT NOT NULL DEFAULT '',
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (recording_id, participant_id, key)
    );
    CREATE INDEX tags_kv ON tags (key, value);
    CREATE TABLE pauses (
        id INTEGER PRIMARY KEY,
        recording_id TEXT NOT NULL REFERENCES recordings (recording_id),
        participant_id TEXT,
        start_time REAL NOT NULL,
        end_time REAL,
        paused_by TEXT,
        reason TEXT
    );
    CREATE INDEX pauses_recording ON pauses (recording_id);
    CREATE TABLE tracks (
        recording_id TEXT NOT NULL REFERENCES recordings (recording_id),
        name TEXT NOT NULL,
        participant_id TEXT,
        kind TEXT NOT NULL,
        codec TEXT NOT NULL,
        state TEXT NOT NULL,
        file TEXT,
        frames INTEGER NOT NULL,
        packets_lost INTEGER NOT NULL,
        packets_paused INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (recording_id, name)
    );
    """,
    # 2: legal hold, retention and deletion tombstones
    """
    ALTER TABLE recordings ADD COLUMN legal_hold INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE recordings ADD COLUMN legal_hold_reason TEXT;
    ALTER TABLE recordings ADD COLUMN retention_until REAL;
    ALTER TABLE recordings ADD COLUMN deleted_at REAL;
    ALTER TABLE recordings ADD COLUMN deleted_by TEXT;
    CREATE INDEX recordings_status ON recordings (status);
    """,
    # 3: API keys (hashes only) and recording policy
    """
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE policy (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE room_policy (room_id TEXT PRIMARY KEY, policy TEXT NOT NULL, updated_at REAL NOT NULL);
    """,
    # 4: the audit log, append-only (triggers refuse UPDATE and DELETE) and hash-chained
    """
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT,
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,
        remote TEXT,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX audit_action ON audit (action, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # 5: records lifecycle (recorder/lifecycle): retention rules, each recording's deletion plan and
    # progress, objects deleted, export jobs and schedules
    """
    ALTER TABLE recordings ADD COLUMN delete_after REAL;
    ALTER TABLE recordings ADD COLUMN delete_plan TEXT;
    ALTER TABLE recordings ADD COLUMN next_deletion REAL;
    ALTER TABLE recordings ADD COLUMN lifecycle_state TEXT;
    ALTER TABLE recordings ADD COLUMN lifecycle_blocked TEXT;
    ALTER TABLE recordings ADD COLUMN hold_applied INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX recordings_next_deletion ON recordings (next_deletion);
    CREATE TABLE retention_rules (
        rule_id TEXT PRIMARY KEY,
        position INTEGER NOT NULL,
        rule TEXT NOT NULL,
        updated_at REAL NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE deleted_objects (
        recording_id TEXT NOT NULL REFERENCES recordings (recording_id),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        deleted_at REAL NOT NULL,
        rule TEXT,
        PRIMARY KEY (recording_id, name)
    );
    CREATE TABLE export_jobs (
        job_id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        schedule_id TEXT,
        updated_at REAL NOT NULL,
        total INTEGER,
        done INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT
    );
    CREATE INDEX export_jobs_state ON export_jobs (state, created_at);
    CREATE TABLE export_items (
        job_id TEXT NOT NULL REFERENCES export_jobs (job_id),
        recording_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        state TEXT NOT NULL,
        files TEXT,
        PRIMARY KEY (job_id, recording_id)
    );
    CREATE TABLE export_schedules (
        schedule_id TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        cron TEXT NOT NULL,
        next_run REAL NOT NULL,
        last_run REAL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL
    );
    """,
    # 6: search by participant display name, and tag filters answered from one covering index (the
    # console's and the API's search; bench/console_search.py)
    """
    CREATE INDEX participants_display_name ON participants (display_name);
    CREATE INDEX tags_kv_recording ON tags (key, value, recording_id);
    """,
    # 7: full-text search over transcripts (postprocess/transcribe): one row per segment, its text
    # indexed (FTS5), who said it and when (seconds on the recording's timeline) stored beside
    """
    CREATE VIRTUAL TABLE transcript_segments USING fts5(
        text, recording_id UNINDEXED, speaker UNINDEXED, start UNINDEXED, end UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The last legacy version; later schema changes are Alembic revisions (recorder/db/migrations)."""

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Database", "SchemaTooNewError", "migrate"]


def migrate(db: sqlite3.Connection) -> int:
    """Apply the migrations the database lacks, each in its own transaction; returns the version."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"catalog schema version {version} is newer than this CallVault's ({SCHEMA_VERSION})"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("catalog: migrated schema to version %d", number)
    return SCHEMA_VERSION


def _statements(script: str) -> list[str]:
    """Split a migration into statements (trigger bodies keep their inner ';')."""
    out, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:80]}")
    return out


class Database:
    """The catalog connection, used only from its own worker thread: a SQLite file (`Database(path)`, the
    embedded default) or PostgreSQL (`Database("postgresql://...")`, api.catalog_url), one connection
    either way. On PostgreSQL `connection` is a recorder.db.postgres.PgConnection: the same `execute`,
    `executemany` and rows as sqlite3's, the few SQLite spellings translated (see that module)."""

    def __init__(self, target: Path | str | CatalogLocation) -> None:
        if isinstance(target, CatalogLocation):
            self.location = target
        elif isinstance(target, str):
            self.location = parse_catalog_url(target)
        else:
            self.location = CatalogLocation(dialect="sqlite", path=target)
        self.dialect: Dialect = self.location.dialect
        self.path: Path = self.location.path or Path()
        """The SQLite file (Path() on PostgreSQL)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        self._db: sqlite3.Connection | None = None
        try:
            self.submit(self._open).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    def _open(self) -> None:
        if self.dialect == "postgresql":
            self._db = _open_postgres(self.location.conninfo or "")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        try:
            migrate(db)
            if stored_revision(db, "sqlite") != HEAD:
                from recorder.db import schema  # noqa: PLC0415 (Alembic: only to migrate)

                schema.upgrade_sqlite(self.path)
        except BaseException:
            db.close()
            raise
        self._db = db

    def describe(self) -> str:
        """Where the catalog is, fit for a log line (no password)."""
        return self.location.redacted() if self.dialect == "postgresql" else str(self.path)

    @property
    def connection(self) -> sqlite3.Connection:
        """Only for code already running on the worker thread. Typed as sqlite3's: on PostgreSQL it is
        the adapter answering the same subset (execute, executemany, rows by name and index)."""
        assert self._db is not None, "catalog database is closed"
        return self._db

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue `fn` on the worker thread (keeps submission order); does not wait."""
        return self._executor.submit(fn)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the worker thread and wait for it without blocking the loop."""
        return await asyncio.wrap_future(self.submit(fn))

    def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        self.submit(shut).result()
        self._executor.shutdown(wait=True)


def _open_postgres(conninfo: str) -> sqlite3.Connection:
    import psycopg  # noqa: PLC0415 (the postgres extra: only a PostgreSQL catalog needs it)

    from recorder.db.postgres import MIGRATION_LOCK, PgConnection  # noqa: PLC0415

    conn = PgConnection(conninfo)
    try:
        if stored_revision(cast(sqlite3.Connection, conn), "postgresql") != HEAD:
            from recorder.db import schema  # noqa: PLC0415 (Alembic: only to migrate)

            schema.upgrade_postgres(lambda: psycopg.connect(conninfo, connect_timeout=10), MIGRATION_LOCK)
    except BaseException:
        conn.close()
        raise
    return cast(sqlite3.Connection, conn)
