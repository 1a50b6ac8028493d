"""Copy a whole catalog into an empty one: an embedded SQLite catalog into the PostgreSQL catalog a fleet
will share (`callvault catalog-copy`). Every table, rows as they are (the audit log verbatim, so its
hash chain and head are the same), in one transaction on the target; refused when the target holds
anything already, or when the source has a table this CallVault does not know (never copy half)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from pydantic import BaseModel

from recorder.api import search
from recorder.api.audit import query_entries, verify_audit_chain
from recorder.api.db import Database

# Parents before children (foreign keys); every table of the schema at revision HEAD.
TABLES = (
    "recordings",
    "participants",
    "tags",
    "pauses",
    "tracks",
    "api_keys",
    "policy",
    "room_policy",
    "audit",
    "retention_rules",
    "deleted_objects",
    "export_jobs",
    "export_items",
    "export_schedules",
    "transcript_segments",
    "recorders",  # the recorder fleet (recorder/fleet)
    "recording_segments",
    "room_commands",  # room control across the fleet (recorder/fleet/commands.py)
    "pending_webhooks",  # webhooks a worker left for the API nodes (recorder/lifecycle/pending.py)
)
COLUMNS = {"transcript_segments": ("text", "recording_id", "speaker", "start", "end")}
"""Tables whose columns differ by dialect (PostgreSQL adds an id and the generated tsvector): these only."""
IDENTITY = {"pauses": "id"}  # PostgreSQL identity columns copied with their values: sequences moved on
BATCH = 2000


class CopyError(Exception):
    """The copy was refused or failed; nothing was written to the target (its transaction undone)."""


class CopyReport(BaseModel):
    rows: dict[str, int]
    audit_head: str | None


def _tables(db: Database) -> set[str]:
    c = db.connection
    if db.dialect == "sqlite":
        rows = c.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        names = {r[0] for r in rows}
        internal = {n for n in names if n.startswith(("sqlite_", "transcript_segments_"))}  # FTS5's own
        return names - internal - {"alembic_version"}
    rows = c.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def copy_catalog(
    source: Database, target: Database, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy `source` into the empty `target` (both open, at the same schema revision)."""
    unknown = source.submit(lambda: _tables(source)).result() - set(TABLES)
    if unknown:
        raise CopyError(f"the source has tables this CallVault cannot copy: {', '.join(sorted(unknown))}")

    def occupied() -> list[str]:
        c = target.connection
        return [t for t in TABLES if c.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is not None]

    if full := target.submit(occupied).result():
        raise CopyError(f"the target catalog is not empty ({', '.join(full)}): copy into a new database")

    counts: dict[str, int] = {}
    t = target.connection
    target.submit(lambda: t.execute("BEGIN IMMEDIATE")).result()
    try:
        for table in TABLES:
            counts[table] = _copy_table(source, target, table)
            if progress is not None:
                progress(table, counts[table])
        for table, column in IDENTITY.items():
            if target.dialect == "postgresql" and counts[table]:
                sql = (
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" (SELECT MAX({column}) FROM {table}))"
                )
                target.submit(lambda sql=sql: t.execute(sql)).result()  # type: ignore[misc]
        if target.dialect == "postgresql":  # each transcribed recording's own words (migration 0011)
            target.submit(lambda: t.execute(search.ALL_RECORDING_WORDS)).result()
        target.submit(lambda: t.execute("COMMIT")).result()
    except BaseException:
        target.submit(lambda: t.execute("ROLLBACK")).result()
        raise

    entries = target.submit(lambda: query_entries(target.connection)).result()
    problems = verify_audit_chain(entries)
    before = source.submit(lambda: query_entries(source.connection)).result()
    if problems or [e.hash for e in entries] != [e.hash for e in before]:
        raise CopyError(
            f"the copied audit log does not verify: {problems[0].line() if problems else 'differs'}"
        )
    return CopyReport(rows=counts, audit_head=entries[-1].hash if entries else None)


def _copy_table(source: Database, target: Database, table: str) -> int:
    wanted = ", ".join(f'"{c}"' for c in COLUMNS[table]) if table in COLUMNS else "*"
    cursor = source.submit(lambda: source.connection.execute(f"SELECT {wanted} FROM {table}")).result()
    columns = [d[0] for d in cursor.description]
    quoted = ", ".join(f'"{c}"' for c in columns)
    insert = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})"
    total = 0
    while True:
        batch: list[sqlite3.Row] = source.submit(lambda: cursor.fetchmany(BATCH)).result()
        if not batch:
            return total
        rows = [tuple(r) for r in batch]
        target.submit(lambda rows=rows: target.connection.executemany(insert, rows)).result()  # type: ignore[misc]
        total += len(rows)
