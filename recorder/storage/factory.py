"""Build the configured store without touching the network (S3 clients connect lazily)."""

from __future__ import annotations

from recorder.storage.base import ObjectStore
from recorder.storage.local import LocalStore
from recorder.storage.s3 import S3Store
from recorder.storage.settings import StorageBackend, StorageSettings


def open_store(settings: StorageSettings) -> ObjectStore:
    if settings.backend is StorageBackend.S3:
        return S3Store(settings.s3)
    return LocalStore(settings.local.root)
