"""The one storage interface every backend implements, and the typed facts and errors it deals in.

Backends are synchronous: their calls block on disk or network. Code on the event loop uses
`AsyncObjectStore` (recorder/storage/aio.py), which runs every call in a worker thread.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from recorder.errors import CallVaultError
from recorder.storage.settings import RetentionMode

CHUNK = 1024 * 1024


class StorageError(CallVaultError):
    """A storage call failed; `key` names the object when there is one."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StorageUnavailableError(StorageError):
    """The store cannot be reached or answered with a server error: retry later."""


class StorageRefusedError(StorageError):
    """The store refused the request (credentials, permissions, bucket, object lock): retrying won't help."""


class ObjectNotFoundError(StorageError):
    """No object under that key."""


class Retention(BaseModel):
    """Object lock retention of one object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RetentionMode
    until: datetime = Field(description="The object cannot be deleted or overwritten before this (UTC).")


class ObjectInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    size: int = Field(ge=0)
    content_type: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    metadata: dict[str, str] = Field(
        default_factory=dict, description="User metadata, keys lower-case without the x-amz-meta- prefix."
    )


class PutResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    size: int = Field(ge=0)
    sha256: str = Field(description="Hex SHA-256 of the bytes uploaded.")
    etag: str | None = None
    version_id: str | None = None
    retention: Retention | None = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ObjectStore(ABC):
    """Objects under string keys ('/'-separated, no leading '/')."""

    @abstractmethod
    def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        """Store the file's bytes under `key`. `retention` None means the store's policy: with object lock
        on the bucket and WORM enabled, the configured mode and period. `metadata` keys are stored
        lower-cased; `sha256` is always added."""

    @abstractmethod
    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        """As put_file, from memory."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Stream the object's bytes. Raises ObjectNotFoundError before yielding when it is missing."""

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def download(self, key: str, path: Path) -> None:
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as f:
            for chunk in self.iter_chunks(key):
                f.write(chunk)
        tmp.replace(path)

    def sha256(self, key: str) -> str:
        """Hash the stored bytes (reads the whole object)."""
        h = hashlib.sha256()
        for chunk in self.iter_chunks(key):
            h.update(chunk)
        return h.hexdigest()

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Facts about the object; raises ObjectNotFoundError."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix`, recursively, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (missing objects are not an error). Locked objects raise StorageRefusedError."""

    @abstractmethod
    def presign_get(self, key: str, expires: timedelta) -> str:
        """A URL that downloads the object without credentials until `expires` from now."""

    @abstractmethod
    def object_lock_enabled(self) -> bool:
        """Whether the bucket enforces object lock (WORM)."""

    @abstractmethod
    def get_retention(self, key: str) -> Retention | None:
        """The object's lock retention, None when it has none."""

    # -- legal hold and purging (records lifecycle: recorder/lifecycle) --------------------------------

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Place (`on`) or lift the object's legal hold: while it is on, the object cannot be deleted or
        overwritten, whatever its retention. Stores without legal holds raise StorageRefusedError."""
        raise StorageRefusedError(f"{type(self).__name__} has no legal hold", key)

    def legal_hold(self, key: str) -> bool:
        """Whether the object is under legal hold (False for stores without legal holds); raises
        ObjectNotFoundError."""
        self.stat(key)
        return False

    def purge(self, key: str) -> None:
        """Remove the object for good, every stored version of it (a versioned bucket keeps old versions
        after `delete`). Missing objects are not an error; held or locked ones raise StorageRefusedError."""
        self.delete(key)
