"""`LocalStore`: objects as files under a folder (the embedded default).

An object `a/b/c.webm` is the file `<root>/a/b/c.webm`; its content type, metadata and retention live in
`<root>/.meta/a/b/c.webm.json`, a tree `list` skips. Writes go to a temporary file that is fsynced and
renamed, so a crash never leaves half an object. Local folders have no object lock: `object_lock_enabled`
is False, and an explicit retention is recorded and honoured by `delete` (best effort, not WORM). A legal
hold (`set_legal_hold`) is recorded there too: `delete` and overwrites refuse while it is on.
Presigned URLs are `file://` URLs (no expiry is enforced).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from recorder.storage.base import (
    CHUNK,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStore,
    PutResult,
    Retention,
    StorageError,
    StorageRefusedError,
)
from recorder.storage.keys import check_name

META_DIR = ".meta"


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = Field(default_factory=dict)
    retention: Retention | None = None
    legal_hold: bool = False


class LocalStore(ObjectStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        try:
            check_name(key)
        except ValueError as exc:
            raise StorageError(str(exc), key) from exc
        if key.split("/", 1)[0] == META_DIR:
            raise StorageError(f"object key {key!r} uses the reserved folder {META_DIR}", key)
        return self.root / key

    def _meta_path(self, key: str) -> Path:
        return self.root / META_DIR / f"{key}.json"

    def _read_meta(self, key: str) -> _Meta:
        try:
            return _Meta.model_validate_json(self._meta_path(key).read_bytes())
        except (OSError, ValueError):
            return _Meta()

    def _write(
        self,
        key: str,
        fill: Path | bytes,
        content_type: str,
        metadata: dict[str, str] | None,
        retention: Retention | None,
    ) -> PutResult:
        path = self._path(key)
        before = self._read_meta(key)
        old = before.retention
        if old is not None and old.until > datetime.now(UTC) and path.exists():
            raise StorageRefusedError(f"{key} is retained until {old.until.isoformat()}", key)
        if before.legal_hold and path.exists():
            raise StorageRefusedError(f"{key} is under legal hold", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        h = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                if isinstance(fill, bytes):
                    out.write(fill)
                    h.update(fill)
                    size = len(fill)
                else:
                    with fill.open("rb") as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if path.exists():
                path.chmod(0o644)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot write {key}: {exc}", key) from exc
        digest = h.hexdigest()
        meta = _Meta(
            content_type=content_type,
            metadata={**{k.lower(): v for k, v in (metadata or {}).items()}, "sha256": digest},
            retention=retention,
        )
        mpath = self._meta_path(key)
        mpath.parent.mkdir(parents=True, exist_ok=True)
        mtmp = mpath.with_name(f".{mpath.name}.tmp")
        mtmp.write_text(meta.model_dump_json())
        mtmp.replace(mpath)
        if retention is not None:
            path.chmod(0o444)
        return PutResult(key=key, size=size, sha256=digest, retention=retention)

    def put_file(
        self,
        key: str,
        path: Path,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        return self._write(key, path, content_type, metadata, retention)

    def put_bytes(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        retention: Retention | None = None,
    ) -> PutResult:
        return self._write(key, data, content_type, metadata, retention)

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        path = self._path(key)
        try:
            f = path.open("rb")
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key}", key) from exc
        return _chunks(f, chunk_size)

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key}", key) from exc
        if not path.is_file():
            raise ObjectNotFoundError(f"no object {key}", key)
        meta = self._read_meta(key)
        return ObjectInfo(
            key=key,
            size=st.st_size,
            content_type=meta.content_type,
            last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            metadata=meta.metadata,
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        keys: list[str] = []
        # Walk only the folder the prefix is in (its part up to the last '/'), not the whole store: a
        # recording's listing stays as cheap with 100,000 recordings stored as with one.
        top = self.root
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if folder and all(p not in {"", ".", ".."} for p in folder.split("/")) and "\\" not in folder:
            top = self.root / folder
            if folder.split("/", 1)[0] == META_DIR:
                return
        for dirpath, dirnames, filenames in os.walk(top):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d != META_DIR]
                rel = ""
            for name in filenames:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                key = f"{rel}/{name}" if rel else name
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except ObjectNotFoundError:
                continue

    def delete(self, key: str) -> None:
        path = self._path(key)
        meta = self._read_meta(key)
        retention = meta.retention
        if retention is not None and retention.until > datetime.now(UTC) and path.exists():
            raise StorageRefusedError(f"{key} is retained until {retention.until.isoformat()}", key)
        if meta.legal_hold and path.exists():
            raise StorageRefusedError(f"{key} is under legal hold", key)
        path.unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)

    def presign_get(self, key: str, expires: timedelta) -> str:
        return self._path(key).resolve().as_uri()

    def object_lock_enabled(self) -> bool:
        return False

    def get_retention(self, key: str) -> Retention | None:
        self.stat(key)
        return self._read_meta(key).retention

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Recorded beside the object (as its retention is); `delete` and overwrites refuse while on."""
        self.stat(key)
        meta = self._read_meta(key).model_copy(update={"legal_hold": on})
        mpath = self._meta_path(key)
        mpath.parent.mkdir(parents=True, exist_ok=True)
        mtmp = mpath.with_name(f".{mpath.name}.tmp")
        try:
            with mtmp.open("w") as f:
                f.write(meta.model_dump_json())
                f.flush()
                os.fsync(f.fileno())
            mtmp.replace(mpath)
        except OSError as exc:
            mtmp.unlink(missing_ok=True)
            raise StorageError(f"cannot set the legal hold of {key}: {exc}", key) from exc

    def legal_hold(self, key: str) -> bool:
        self.stat(key)
        return self._read_meta(key).legal_hold


def _chunks(f: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with f:
        while chunk := f.read(chunk_size):
            yield chunk
