"""A psycopg 3 connection that answers the catalog's statements as sqlite3 would.

The catalog's ~115 statements are written once, in the SQL both dialects share; this adapter handles
the few SQLite spellings PostgreSQL lacks, explicitly and only those:

- `?` placeholders become `%s` (and a literal `%` becomes `%%`), outside quoted strings;
- `BEGIN IMMEDIATE` (SQLite: take the database's write lock now) becomes `BEGIN` plus one transaction-scoped
  advisory lock shared by every CallVault process on this database: read-modify-write transactions (the
  audit log's chain head, rule positions, export claims) are serialized across the fleet exactly as SQLite
  serializes them across one file's writers;
- `INSERT OR IGNORE` becomes `INSERT ... ON CONFLICT DO NOTHING`, and `INSERT OR REPLACE` an upsert on the
  table's primary key (REPLACE_KEYS: a table not listed there is refused, never guessed);
- `x IS ?` becomes `x IS NOT DISTINCT FROM %s`;
- booleans bound as integers (the schema keeps SQLite's 0/1 columns), numeric results (SUM of integers)
  come back as int or float, rows answer by name and by index like sqlite3.Row;
- a NUL character in a bound string (a hostile display name or tag: SQLite stores it, PostgreSQL's text
  refuses the whole statement) is stored as U+FFFD, so the row is never lost for it.

Full-text search (FTS5 MATCH vs tsvector) differs in meaning, not spelling: the catalog asks `dialect`.
A connection lost while idle (PostgreSQL restarted) is reopened once and the statement retried; one lost
inside a transaction fails that transaction (its ROLLBACK then does nothing: the server already undid it).
A reopening that failed (the server still down) is tried again by the next statement.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from recorder.db.url import redact

log = logging.getLogger(__name__)

CONNECT_DEFAULTS: dict[str, str | int] = {
    "connect_timeout": 10,
    "application_name": "callvault",
    # a server or network that vanished (no RST) is noticed in about a minute, not after the kernel's hours
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""libpq parameters used unless the catalog URL sets them."""

WRITE_LOCK = 0x43_56_61_75_6C_74  # "CVault": pg_advisory_xact_lock key of BEGIN IMMEDIATE
MIGRATION_LOCK = WRITE_LOCK + 1

# Primary keys of the tables written with INSERT OR REPLACE (the upsert's conflict target).
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "tracks": ("recording_id", "name"),
    "tags": ("recording_id", "participant_id", "key"),
    "policy": ("name",),
    "room_policy": ("room_id",),
    "retention_rules": ("rule_id",),
    "deleted_objects": ("recording_id", "name"),
    "export_items": ("job_id", "recording_id"),
}

_INSERT = re.compile(
    r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*\(([^)]*)\)(.*)$", re.IGNORECASE | re.DOTALL
)
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?%s", re.IGNORECASE)


class SqlTranslationError(ValueError):
    """A statement uses SQLite syntax the adapter does not translate."""


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """The PostgreSQL spelling of one catalog statement (see the module's docstring)."""
    out = _placeholders(sql)
    out = _IS_PARAM.sub(lambda m: "IS DISTINCT FROM %s" if m.group(1) else "IS NOT DISTINCT FROM %s", out)
    m = _INSERT.match(out)
    if m is not None:
        verb, table, columns, rest = m.group(1).upper(), m.group(2), m.group(3), m.group(4)
        head = f"INSERT INTO {table} ({columns}){rest.rstrip().rstrip(';')}"
        if verb == "IGNORE":
            return f"{head} ON CONFLICT DO NOTHING"
        keys = REPLACE_KEYS.get(table.lower())
        if keys is None:
            raise SqlTranslationError(f"INSERT OR REPLACE INTO {table}: no primary key known for it")
        names = [c.strip() for c in columns.split(",")]
        updates = [f"{c} = EXCLUDED.{c}" for c in names if c not in keys]
        action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
        return f"{head} ON CONFLICT ({', '.join(keys)}) {action}"
    return out


def _placeholders(sql: str) -> str:
    """`?` to `%s` and `%` to `%%`, leaving quoted strings and identifiers alone."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def _param(value: object) -> object:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL: never lose the row for it
    return value


def _params(params: Sequence[object] | None) -> list[object]:
    return [] if params is None else [_param(v) for v in params]


class Row(Sequence[Any]):
    """A result row by index (`row[0]`) or by column name (`row["seq"]`), as sqlite3.Row."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: dict[str, int], values: Sequence[Any]) -> None:
        self._names = names
        self._values = tuple(values)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=True))!r})"


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: Row(names, values)


class _NumericLoader(Loader):
    """numeric (SUM of integers, AVG) as int when whole, else float: what SQLite returns."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class PgConnection:
    """The catalog's connection to PostgreSQL, autocommit unless a statement opens a transaction."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            given = conninfo_to_dict(self._conninfo)
            defaults = {k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}  # the URL's win
            conn = psycopg.connect(make_conninfo(self._conninfo, **defaults), autocommit=True)
        except psycopg.Error as exc:
            raise psycopg.OperationalError(
                f"cannot connect to the catalog {redact(self._conninfo)}: {_first_line(exc)}"
            ) from None
        conn.row_factory = _row_factory
        conn.adapters.register_loader("numeric", _NumericLoader)
        return conn

    @property
    def raw(self) -> psycopg.Connection[Any]:
        return self._conn

    def _idle(self) -> bool:
        return self._conn.info.transaction_status == pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[object] | None = None) -> psycopg.Cursor[Any]:
        head = sql.lstrip()[:20].upper()
        if head.startswith("BEGIN"):
            return self._begin(immediate="IMMEDIATE" in head or "EXCLUSIVE" in head)
        if head.startswith(("ROLLBACK", "COMMIT")) and self._conn.broken:
            if head.startswith("COMMIT"):
                raise psycopg.OperationalError("the catalog connection was lost: the transaction is undone")
            self._reconnect()
            return self._conn.cursor()
        if self._conn.closed:  # an earlier reconnect failed (the server was still down): try again now
            self._reconnect()
        statement = translate(sql)
        values = _params(params)
        idle = self._idle()
        try:
            return self._conn.execute(statement, values, prepare=False)
        except psycopg.OperationalError:
            if not (idle and self._conn.broken):
                raise
            self._reconnect()
            return self._conn.execute(statement, values, prepare=False)

    def executemany(self, sql: str, seq: Iterable[Sequence[object]]) -> psycopg.Cursor[Any]:
        if self._conn.closed:
            self._reconnect()
        cursor = self._conn.cursor()
        cursor.executemany(translate(sql), [_params(p) for p in seq])
        return cursor

    def _begin(self, immediate: bool) -> psycopg.Cursor[Any]:
        if self._conn.broken or self._conn.closed:
            self._reconnect()
        try:
            cursor = self._conn.execute("BEGIN")
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            self._reconnect()
            cursor = self._conn.execute("BEGIN")
        if immediate:
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        return cursor

    def _reconnect(self) -> None:
        log.warning("catalog: connection to %s lost, reconnecting", redact(self._conninfo))
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
        self._conn = self._connect()

    def close(self) -> None:
        self._conn.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
