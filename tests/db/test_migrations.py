"""Schema migrations (Alembic, recorder/db/migrations) on both dialects: a catalog from before Alembic
(SQLite, PRAGMA user_version 4 or 7) upgrades and keeps its rows; a catalog written by a newer CallVault is
refused and left as it was; PostgreSQL databases are created at the newest revision (once however many
nodes start together: tests/db/test_audit_fleet.py starts them together)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import pytest
from postgres_kit import PostgresServer

from recorder.api.audit import AuditLog
from recorder.api.db import MIGRATIONS, Database, SchemaTooNewError
from recorder.db import schema
from recorder.db.revision import HEAD


def _legacy_catalog(path: Path, version: int) -> None:
    """A catalog as CallVault left it before Alembic: the first `version` migrations, one recording."""
    db = sqlite3.connect(path, isolation_level=None)
    for number in range(1, version + 1):
        db.executescript(MIGRATIONS[number - 1])
        db.execute(f"PRAGMA user_version = {number}")
    db.execute(
        "INSERT INTO recordings (recording_id, folder, status, started_at, updated_at)"
        " VALUES ('rec-old', '/data/rec-old', 'finished', 1.7e9, 1.7e9)"
    )
    db.close()


def _revision(db: Database) -> str:
    return str(
        db.submit(
            lambda: db.connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        ).result()
    )


def test_head_names_the_newest_revision() -> None:
    assert schema.head() == HEAD  # recorder/db/revision.py's constant, read without importing Alembic


@pytest.mark.parametrize("version", [4, 7])
def test_a_catalog_from_before_alembic_upgrades_and_keeps_its_rows(tmp_path: Path, version: int) -> None:
    path = tmp_path / "catalog.sqlite3"
    _legacy_catalog(path, version)
    db = Database(path)
    try:
        assert _revision(db) == schema.head()
        row = db.submit(
            lambda: db.connection.execute(
                "SELECT status FROM recordings WHERE recording_id = 'rec-old'"
            ).fetchone()
        ).result()
        assert row["status"] == "finished"
        entry = db.submit(
            lambda: AuditLog(db).append_now("admin", "admin", "t.upgraded", None, "ok", None)
        ).result()
        assert entry.seq == 1  # the audit table (migration 4) works
        assert db.submit(lambda: db.connection.execute("PRAGMA user_version").fetchone()[0]).result() == 7
    finally:
        db.close()
    Database(path).close()  # and opens again as it is


def test_a_newer_sqlite_catalog_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    Database(path).close()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNewError, match="revision f00dfeed is newer"):
        Database(path)
    assert path.read_bytes() == before


def test_postgres_is_created_at_head_and_refuses_newer(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    db = Database(url)
    assert db.dialect == "postgresql" and _revision(db) == schema.head()
    db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    with pytest.raises(SchemaTooNewError, match="revision f00dfeed is newer"):
        Database(url)


def test_the_audit_log_refuses_update_delete_and_truncate_on_postgres(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    db = Database(url)
    try:
        db.submit(lambda: AuditLog(db).append_now("admin", "admin", "t.one", None, "ok", None)).result()
    finally:
        db.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("UPDATE audit SET actor = 'x'", "DELETE FROM audit", "TRUNCATE audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone() == (1,)
