"""The audit log: append-only and hash-chained.

Every entry's `hash` is the SHA-256 of its canonical JSON (sorted keys, no spaces, UTF-8) without the
hash itself, and that JSON includes `prev_hash`, the previous entry's hash (64 zeros for the first).
Changing, removing or reordering any entry breaks every hash after it; the catalog's triggers refuse
UPDATE and DELETE on the table. `verify_audit_chain` checks an exported or stored log;
`callvault verify --audit PATH` runs it on a catalog database or a JSON Lines export.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.api.db import Database
from recorder.db.url import parse_catalog_url

GENESIS = "0" * 64
SQLITE_MAGIC = b"SQLite format 3\x00"

DetailValue = str | int | float | bool | None


class AuditEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=1, description="Position in the log, from 1, without holes.")
    at: str = Field(
        description="When, RFC 3339 UTC with microseconds.", json_schema_extra={"format": "date-time"}
    )
    actor: str = Field(description="Name of the API key (or 'system').")
    role: str | None = None
    action: str = Field(description="What: 'recording.view', 'recording.delete', 'policy.update'...")
    target: str | None = Field(default=None, description="What it was done to: a recording id, a room...")
    outcome: str = Field(description="'ok', 'denied', 'refused', 'failed' or 'not-found'.")
    remote: str | None = Field(default=None, description="From where: the client's address.")
    detail: dict[str, DetailValue] = Field(default_factory=dict)
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return entry_hash(self.model_dump(exclude={"hash"}))


def entry_hash(fields: dict[str, object]) -> str:
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class AuditProblem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int | None
    detail: str

    def line(self) -> str:
        where = f"audit#{self.seq}" if self.seq is not None else "audit"
        return f"broken-chain: {where}: {self.detail}"


def verify_audit_chain(entries: Iterable[AuditEntry], start_hash: str = GENESIS) -> list[AuditProblem]:
    """Problems of the chain (empty when it holds): a hash that does not recompute, a link to a
    previous hash that is not the previous entry's, a hole or a reordering in `seq`. `start_hash` lets an
    export that begins mid-log be checked from the entry before it."""
    problems: list[AuditProblem] = []
    prev_hash, prev_seq = start_hash, None
    for entry in entries:
        if prev_seq is not None and entry.seq != prev_seq + 1:
            problems.append(AuditProblem(seq=entry.seq, detail=f"follows entry {prev_seq}: entries missing"))
        elif prev_seq is None and start_hash == GENESIS and entry.seq != 1:
            problems.append(AuditProblem(seq=entry.seq, detail="the log does not start at entry 1"))
        if entry.prev_hash != prev_hash:
            problems.append(AuditProblem(seq=entry.seq, detail="prev_hash is not the previous entry's hash"))
        if entry.computed_hash() != entry.hash:
            problems.append(AuditProblem(seq=entry.seq, detail="hash does not match the entry: edited"))
        prev_hash, prev_seq = entry.hash, entry.seq
    return problems


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        remote=row["remote"],
        detail=json.loads(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def query_entries(
    db: sqlite3.Connection,
    *,
    after: int = 0,
    limit: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
) -> list[AuditEntry]:
    where, args = ["seq > ?"], [after]
    for column, value in (("action", action), ("actor", actor), ("target", target)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)  # type: ignore[arg-type]
    sql = f"SELECT * FROM audit WHERE {' AND '.join(where)} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [_entry(r) for r in db.execute(sql, args)]


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append_now(
        self,
        actor: str,
        role: str | None,
        action: str,
        target: str | None,
        outcome: str,
        remote: str | None,
        detail: dict[str, DetailValue] | None = None,
    ) -> AuditEntry:
        """(worker thread) Append one entry in one transaction, chained to the last one."""
        db = self.db.connection
        db.execute("BEGIN IMMEDIATE")
        try:
            last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            fields: dict[str, object] = {
                "seq": (last["seq"] + 1) if last else 1,
                "at": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "actor": actor,
                "role": role,
                "action": action,
                "target": target,
                "outcome": outcome,
                "remote": remote,
                "detail": detail or {},
                "prev_hash": last["hash"] if last else GENESIS,
            }
            entry = AuditEntry.model_validate({**fields, "hash": ""})
            entry.hash = entry.computed_hash()
            db.execute(
                "INSERT INTO audit (seq, at, actor, role, action, target, outcome, remote, detail,"
                " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.at,
                    entry.actor,
                    entry.role,
                    entry.action,
                    entry.target,
                    entry.outcome,
                    entry.remote,
                    json.dumps(entry.detail, sort_keys=True),
                    entry.prev_hash,
                    entry.hash,
                ),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return entry

    def append_many_in(
        self, items: list[tuple[str, str | None, str, str | None, str, str | None, dict[str, DetailValue]]]
    ) -> list[AuditEntry]:
        """(worker thread) Append entries (actor, role, action, target, outcome, remote, detail), chained
        in order, inside the caller's open transaction (BEGIN IMMEDIATE ... COMMIT around it and the
        writes they describe): one commit for a batch (recorder/lifecycle deletes in batches)."""
        db = self.db.connection
        last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last["seq"], last["hash"]) if last else (0, GENESIS)
        out = []
        for actor, role, action, target, outcome, remote, detail in items:
            seq += 1
            entry = AuditEntry(
                seq=seq,
                at=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                actor=actor,
                role=role,
                action=action,
                target=target,
                outcome=outcome,
                remote=remote,
                detail=detail,
                prev_hash=prev,
                hash="",
            )
            entry.hash = entry.computed_hash()
            db.execute(
                "INSERT INTO audit (seq, at, actor, role, action, target, outcome, remote, detail,"
                " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.seq,
                    entry.at,
                    entry.actor,
                    entry.role,
                    entry.action,
                    entry.target,
                    entry.outcome,
                    entry.remote,
                    json.dumps(entry.detail, sort_keys=True),
                    entry.prev_hash,
                    entry.hash,
                ),
            )
            prev = entry.hash
            out.append(entry)
        return out

    async def append(
        self,
        actor: str,
        role: str | None,
        action: str,
        target: str | None,
        outcome: str,
        remote: str | None,
        detail: dict[str, DetailValue] | None = None,
    ) -> AuditEntry:
        return await self.db.run(
            lambda: self.append_now(actor, role, action, target, outcome, remote, detail)
        )

    async def entries(self, **filters: object) -> list[AuditEntry]:
        return await self.db.run(lambda: query_entries(self.db.connection, **filters))  # type: ignore[arg-type]

    async def verify(self) -> tuple[int, list[AuditProblem]]:
        def check() -> tuple[int, list[AuditProblem]]:
            entries = query_entries(self.db.connection)
            return len(entries), verify_audit_chain(entries)

        return await self.db.run(check)


class AuditReadError(Exception):
    """The audit log at a path cannot be read."""


def read_audit_postgres(url: str) -> list[AuditEntry]:
    """Entries of a PostgreSQL catalog (api.catalog_url), in order, read in a read-only transaction (no
    migration, nothing written). AuditReadError names the database without its password."""
    location = parse_catalog_url(url)
    try:
        from recorder.db.postgres import PgConnection  # noqa: PLC0415 (the postgres extra)

        conn = PgConnection(location.conninfo or "")
    except Exception as exc:  # ImportError, or psycopg's: one line either way
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditReadError(f"cannot read {location.redacted()}: {why}") from None
    try:
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        return query_entries(cast(sqlite3.Connection, conn))
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditReadError(f"{location.redacted()}: not a CallVault catalog: {why}") from None
    finally:
        conn.close()


def read_audit_file(path: Path) -> Iterator[AuditEntry]:
    """Entries of a catalog database (opened read-only) or of a JSON Lines export, in order."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise AuditReadError(f"cannot read {path}: {exc}") from exc
    if head == SQLITE_MAGIC:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            db.row_factory = sqlite3.Row
            try:
                entries = query_entries(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            raise AuditReadError(f"{path}: not a CallVault catalog: {exc}") from exc
        yield from entries
        return
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield AuditEntry.model_validate_json(line)
            except ValidationError as exc:
                raise AuditReadError(
                    f"{path}:{number}: not an audit entry: {exc.errors()[0]['msg']}"
                ) from exc
