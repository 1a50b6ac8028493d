"""Migration 0008 (search at scale) on catalogs that already hold recordings, on both dialects: each
recording's participant count is filled from its participants, so the participants sort is right from the
first search after the upgrade, and the search answers as before (same page, exact total)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from alembic import command
from postgres_kit import PostgresServer
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from recorder.api.catalog import Catalog
from recorder.api.db import MIGRATIONS, Database
from recorder.api.models import SearchQuery, SortField, SortOrder
from recorder.db import schema

PEOPLE = {"rec-a": 3, "rec-b": 0, "rec-c": 1}


def _rows(run: Callable[[str, tuple[object, ...]], object]) -> None:
    """Recordings with 3, 0 and 1 participants, written as a catalog at revision 0007 held them (`run`:
    a connection's execute, `?` placeholders)."""
    for n, (rid, people) in enumerate(PEOPLE.items()):
        run(
            "INSERT INTO recordings (recording_id, folder, status, started_at, updated_at)"
            " VALUES (?, ?, 'finished', ?, ?)",
            (rid, f"/data/{rid}", 1.7e9 + n, 1.7e9),
        )
        for i in range(people):
            run("INSERT INTO participants (recording_id, participant_id) VALUES (?, ?)", (rid, f"p{i}"))


def _searched(db: Database) -> list[tuple[str, int]]:
    catalog = Catalog(db)
    q = SearchQuery(sort=SortField.PARTICIPANTS, order=SortOrder.ASC)
    page = db.submit(lambda: catalog.search(q)).result()
    assert (page.total, page.total_exact, page.next_offset) == (3, True, None)
    return [(i.recording_id, len(i.participants)) for i in page.items]


EXPECTED = [("rec-b", 0), ("rec-c", 1), ("rec-a", 3)]


def test_a_sqlite_catalog_upgraded_sorts_by_its_participants(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    for number, migration in enumerate(MIGRATIONS, start=1):  # the catalog as CallVault left it at 7
        raw.executescript(migration)
        raw.execute(f"PRAGMA user_version = {number}")
    _rows(raw.execute)
    raw.close()
    db = Database(path)
    try:
        assert _searched(db) == EXPECTED
    finally:
        db.close()


def test_a_postgres_catalog_at_0007_upgraded_sorts_by_its_participants(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    engine = create_engine(url.replace("postgresql:", "postgresql+psycopg:", 1), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            config = schema._config(connection)
            command.upgrade(config, "0007")  # the baseline, before this migration
            connection.commit()
            raw = connection.connection.driver_connection
            assert raw is not None
            _rows(lambda sql, args: raw.execute(sql.replace("?", "%s"), args))
            raw.commit()
    finally:
        engine.dispose()
    db = Database(url)  # migrates to the newest revision
    try:
        assert _searched(db) == EXPECTED
    finally:
        db.close()
