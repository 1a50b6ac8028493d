"""API keys and roles.

A key is `cv_<key id>_<secret>` (the secret: 32 random bytes, URL-safe base64). Only its SHA-256 is
stored; a presented key is looked up by its id and its hash compared in constant time. A key of that much
entropy needs no slow hash: nobody can guess it, and the hash only keeps a stolen database from being a
list of working keys. The bootstrap admin key from the settings is compared the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
from enum import StrEnum

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from recorder.api.db import Database
from recorder.api.problems import ApiError
from recorder.api.times import Timestamp, utc

log = logging.getLogger(__name__)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    INGEST = "ingest"
    """An SFU integration (the mediasoup package): registers streams to record through /v1/ingest."""


class Principal(BaseModel):
    """Who is calling: the key's name (what the audit log and pauses record) and role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str
    name: str
    role: Role


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str
    name: str
    role: Role
    created_at: Timestamp
    created_by: str
    revoked_at: Timestamp | None = None


class NewApiKey(ApiKeyInfo):
    key: str = Field(description="The key itself: shown once, never stored.")


BOOTSTRAP_ID = "bootstrap"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"cv_{key_id}_{secrets.token_urlsafe(32)}"


def presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


SHARED_REFRESH_SECONDS = 2.0
"""On a catalog other nodes share (PostgreSQL), how often the key mirror is read again: a key created or
revoked through one node is known to every other within this (plus one query)."""


class KeyStore:
    """Keys in the catalog database, mirrored in memory (they are few) so a request costs no query. On a
    shared catalog (PostgreSQL) the mirror is read again every SHARED_REFRESH_SECONDS (`start_refresh`)."""

    def __init__(self, db: Database, bootstrap: str | None) -> None:
        self.db = db
        self._bootstrap = digest(bootstrap) if bootstrap else None
        self._keys: dict[str, ApiKeyInfo] = {}
        self._hashes: dict[str, str] = {}
        self._refresh: asyncio.Task[None] | None = None

    async def load(self) -> None:
        def read() -> list[tuple[ApiKeyInfo, str]]:
            rows = self.db.connection.execute("SELECT * FROM api_keys").fetchall()
            return [(_info(r), r["sha256"]) for r in rows]

        for info, sha in await self.db.run(read):  # merged: keys are never deleted, only revoked
            self._keys[info.key_id] = info
            self._hashes[info.key_id] = sha

    def start_refresh(self, interval: float = SHARED_REFRESH_SECONDS) -> None:
        """Read the keys again every `interval` seconds until `close` (other nodes create and revoke)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.load()
                except Exception as exc:  # the catalog unreachable a moment: keep the mirror, say so
                    log.warning("API keys: cannot read the catalog again: %s", exc)

        if self._refresh is None:
            self._refresh = asyncio.create_task(loop(), name="api-keys-refresh")

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None

    def authenticate(self, key: str | None) -> Principal:
        """The key's principal; ApiError 401 for a missing, unknown or revoked key."""
        if not key:
            raise ApiError(401, "an API key is required (Authorization: Bearer <key>)", "unauthorized")
        presented = digest(key)
        if self._bootstrap is not None and hmac.compare_digest(presented, self._bootstrap):
            return Principal(key_id=BOOTSTRAP_ID, name="bootstrap-admin", role=Role.ADMIN)
        parts = key.split("_")
        key_id = parts[1] if len(parts) >= 3 and parts[0] == "cv" else ""
        info = self._keys.get(key_id)
        expected = self._hashes.get(key_id, "0" * 64)
        matches = hmac.compare_digest(presented, expected)  # compared even for unknown ids
        if info is None or not matches or info.revoked_at is not None:
            raise ApiError(401, "unknown or revoked API key", "unauthorized")
        return Principal(key_id=info.key_id, name=info.name, role=info.role)

    def list(self) -> list[ApiKeyInfo]:
        return sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))

    async def create(self, name: str, role: Role, by: str) -> NewApiKey:
        key_id, key = new_key()
        now = time.time()
        info = ApiKeyInfo(key_id=key_id, name=name, role=role, created_at=utc(now), created_by=by)
        sha = digest(key)

        def insert() -> None:
            self.db.connection.execute(
                "INSERT INTO api_keys (key_id, name, role, sha256, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, role.value, sha, now, by),
            )

        await self.db.run(insert)
        self._keys[key_id] = info
        self._hashes[key_id] = sha
        return NewApiKey(**info.model_dump(), key=key)

    async def revoke(self, key_id: str) -> ApiKeyInfo | None:
        info = self._keys.get(key_id)
        if info is None:
            return None
        if info.revoked_at is None:
            now = time.time()

            def update() -> None:
                self.db.connection.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id)
                )

            await self.db.run(update)
            info.revoked_at = utc(now)
        return info


def _info(r: sqlite3.Row) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=r["key_id"],
        name=r["name"],
        role=Role(r["role"]),
        created_at=r["created_at"],
        created_by=r["created_by"],
        revoked_at=r["revoked_at"],
    )
