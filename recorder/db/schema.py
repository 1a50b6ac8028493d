"""Brings a catalog's schema up to date with Alembic (recorder/db/migrations), on either dialect.

SQLite catalogs first run the legacy `PRAGMA user_version` migrations (recorder/api/db.py) up to version
7, the baseline revision; Alembic takes over from there for both dialects. A catalog whose revision this
CallVault does not know was written by a newer one: refused, never touched. On PostgreSQL, nodes starting
at once take turns (a session advisory lock), so one migrates and the others find it done."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from recorder.db.revision import SchemaTooNewError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision this CallVault knows."""
    script = ScriptDirectory.from_config(_config(None))  # type: ignore[arg-type]
    current = script.get_current_head()
    assert current is not None
    return current


def upgrade(connection: Connection) -> str:
    """Apply the revisions `connection`'s database lacks; returns the revision it is at."""
    cfg = _config(connection)
    script = ScriptDirectory.from_config(cfg)
    for revision in MigrationContext.configure(connection).get_current_heads():
        try:
            script.get_revision(revision)
        except CommandError:
            raise SchemaTooNewError(
                f"catalog schema revision {revision} is newer than this CallVault's ({head()})"
            ) from None
    connection.commit()
    command.upgrade(cfg, "head")
    connection.commit()
    current = MigrationContext.configure(connection).get_current_heads()
    return current[0] if current else ""


def upgrade_sqlite(path: Path) -> str:
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return upgrade(connection)
    finally:
        engine.dispose()


def upgrade_postgres(connect: Any, lock: int) -> str:
    """`connect()` opens a psycopg connection (autocommit off); migrations run under advisory lock `lock`."""
    engine = create_engine("postgresql+psycopg://", creator=connect, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({int(lock)})")
            connection.commit()
            try:
                return upgrade(connection)
            finally:
                connection.exec_driver_sql(f"SELECT pg_advisory_unlock({int(lock)})")
                connection.commit()
    finally:
        engine.dispose()
