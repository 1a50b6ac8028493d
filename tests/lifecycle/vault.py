"""A catalog with synthetic recordings and their objects in a real store (local folder or the moto S3
server), and the lifecycle parts over them with a clock the test sets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.api.audit import AuditEntry, AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.lifecycle.deletion import DeletionScheduler
from recorder.lifecycle.exports import ExportRunner
from recorder.lifecycle.holds import LegalHolds
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.base import ObjectStore
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.webhooks.events import WebhookEvent

DAY = 86400.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp()
OBJECTS = {
    "manifest.json": b'{"not": "a real manifest"}',
    "manifest.json.sig": b"c2ln\n",
    "1001-video-0.webm": b"video" * 200,
    "1002-audio-1.webm": b"audio" * 100,
    "composite-grid.mp4": b"composite" * 50,
}


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Vault:
    root: Path
    db: Database
    catalog: Catalog
    audit: AuditLog
    store: ObjectStore
    clock: Clock = field(default_factory=Clock)
    published: list[tuple[WebhookEvent, str]] = field(default_factory=list)
    live: set[str] = field(default_factory=set)

    @property
    def access(self) -> StorageAccess:
        return StorageAccess(self.store, DEFAULT_KEY_TEMPLATE)

    @property
    def recordings_dir(self) -> Path:
        return self.root / "recordings"

    def prefix(self, rid: str, started: float = T0) -> str:
        return self.access.prefix(rid, datetime.fromtimestamp(started, UTC), None)

    def keys(self, rid: str) -> list[str]:
        return [o.key for o in self.store.list(self.prefix(rid))]

    def add(
        self,
        rid: str,
        room: str = "billing",
        tags: dict[str, str] | None = None,
        objects: dict[str, bytes] | None = None,
        finished: float = T0 + 600,
        status: str = "finished",
    ) -> None:
        """(blocking) A finished recording in the catalog, its objects in the store."""
        folder = self.recordings_dir / rid

        def insert() -> None:
            c = self.db.connection
            c.execute(
                "INSERT INTO recordings (recording_id, room_id, folder, status, started_at, finished_at,"
                " duration, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (rid, room, str(folder), status, T0, finished, finished - T0, finished),
            )
            for k, v in (tags or {}).items():
                c.execute(
                    "INSERT INTO tags (recording_id, participant_id, key, value) VALUES (?, '', ?, ?)",
                    (rid, k, v),
                )

        self.db.submit(insert).result()
        prefix = self.prefix(rid)
        for name, data in (OBJECTS if objects is None else objects).items():
            self.store.put_bytes(prefix + name, data)

    def row(self, rid: str) -> dict[str, object]:
        return dict(
            self.db.submit(
                lambda: self.db.connection.execute(
                    "SELECT * FROM recordings WHERE recording_id = ?", (rid,)
                ).fetchone()
            ).result()
        )

    def hold(self, rid: str, on: bool) -> None:
        self.db.submit(lambda: self.catalog.set_legal_hold(rid, on, "case 17" if on else None)).result()

    async def entries(self, action: str) -> list[AuditEntry]:
        return await self.audit.entries(action=action)

    async def publish(self, event: WebhookEvent, msg_id: str) -> object:
        """The webhooks: what was published lands in `published`."""
        self.published.append((event, msg_id))
        return msg_id

    def scheduler(
        self, settings: LifecycleSettings | None = None, store: ObjectStore | None = None
    ) -> DeletionScheduler:
        access = StorageAccess(store or self.store, DEFAULT_KEY_TEMPLATE)
        publish = self.publish
        return DeletionScheduler(
            settings or LifecycleSettings(),
            self.db,
            self.audit,
            lambda: access,
            self.recordings_dir,
            lambda rid: rid in self.live,
            lambda: publish,
            clock=self.clock,
        )

    def exports(
        self, settings: LifecycleSettings, key: Ed25519PrivateKey, store: ObjectStore | None = None
    ) -> ExportRunner:
        """An export runner over the vault (its store, or `store`), signing with `key`."""
        access = StorageAccess(store or self.store, DEFAULT_KEY_TEMPLATE)
        publish = self.publish
        return ExportRunner(
            settings,
            self.root,
            self.db,
            self.catalog,
            self.audit,
            lambda: access,
            lambda: key,
            lambda: publish,
            clock=self.clock,
        )

    def holds(self) -> LegalHolds:
        access = self.access
        return LegalHolds(self.db, self.audit, lambda: access)


def open_vault(root: Path, store: ObjectStore, catalog_url: str | None = None) -> Vault:
    """A vault whose catalog is root/catalog.sqlite3, or the PostgreSQL database at `catalog_url`."""
    db = Database(catalog_url or root / "catalog.sqlite3")
    return Vault(root, db, Catalog(db), AuditLog(db), store)


async def close(vault: Vault) -> None:
    await asyncio.to_thread(vault.db.close)


Settings = Callable[..., LifecycleSettings]
