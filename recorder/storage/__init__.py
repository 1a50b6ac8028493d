"""Object storage: one `ObjectStore` interface (local folder or S3/MinIO), object keys from a template,
and the durable upload spool with its uploader task."""

from recorder.storage.aio import AsyncObjectStore
from recorder.storage.base import (
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    PutResult,
    Retention,
    StorageError,
    StorageRefusedError,
    StorageUnavailableError,
)
from recorder.storage.factory import open_store
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE, recording_prefix, render_key
from recorder.storage.local import LocalStore
from recorder.storage.s3 import S3Store
from recorder.storage.settings import (
    LocalStoreSettings,
    RetentionMode,
    S3Settings,
    SpoolSettings,
    StorageBackend,
    StorageSettings,
    WormSettings,
)
from recorder.storage.spool import JobState, Spool, SpoolHealth, UploadJob
from recorder.storage.uploader import Uploader

__all__ = [
    "DEFAULT_KEY_TEMPLATE",
    "AsyncObjectStore",
    "JobState",
    "LocalStore",
    "LocalStoreSettings",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "PutResult",
    "Retention",
    "RetentionMode",
    "S3Settings",
    "S3Store",
    "Spool",
    "SpoolHealth",
    "SpoolSettings",
    "StorageBackend",
    "StorageError",
    "StorageRefusedError",
    "StorageSettings",
    "StorageUnavailableError",
    "UploadJob",
    "Uploader",
    "WormSettings",
    "open_store",
    "recording_prefix",
    "render_key",
]
