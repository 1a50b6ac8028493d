"""`AsyncObjectStore`: the same interface for the event loop; every call runs in a worker thread
(asyncio.to_thread), so a slow or unreachable store never blocks the loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from recorder.storage.base import ObjectInfo, ObjectStore, PutResult, Retention


class AsyncObjectStore:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    async def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        return await asyncio.to_thread(self.store.put_file, key, path, content_type, metadata, retention)

    async def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        return await asyncio.to_thread(self.store.put_bytes, key, data, content_type, metadata, retention)

    async def get_bytes(self, key: str) -> bytes:
        return await asyncio.to_thread(self.store.get_bytes, key)

    async def download(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self.store.download, key, path)

    async def stat(self, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self.store.stat, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.store.exists, key)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        return await asyncio.to_thread(lambda: list(self.store.list(prefix)))

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.store.delete, key)

    async def presign_get(self, key: str, expires: timedelta) -> str:
        return await asyncio.to_thread(self.store.presign_get, key, expires)

    async def object_lock_enabled(self) -> bool:
        return await asyncio.to_thread(self.store.object_lock_enabled)

    async def get_retention(self, key: str) -> Retention | None:
        return await asyncio.to_thread(self.store.get_retention, key)
