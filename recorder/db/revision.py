"""The schema revision this CallVault writes, and the one a catalog holds, read without Alembic: opening a
catalog that is already up to date costs one query (Alembic itself is imported only to migrate)."""

from __future__ import annotations

import sqlite3

HEAD = "0012"
"""The newest revision in recorder/db/migrations/versions (tests/db/test_migrations.py checks it)."""


class SchemaTooNewError(RuntimeError):
    """The catalog was written by a newer CallVault: refuse to touch it."""


def stored_revision(db: sqlite3.Connection, dialect: str) -> str | None:
    """The catalog's Alembic revision, None when it has none yet (new, or from before Alembic). `db` is a
    sqlite3 connection or PostgreSQL's adapter (recorder/db/postgres.py)."""
    exists = (
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        if dialect == "sqlite"
        else "SELECT 1 WHERE to_regclass('alembic_version') IS NOT NULL"
    )
    if db.execute(exists).fetchone() is None:
        return None
    row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])
