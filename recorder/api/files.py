"""A recording's files wherever they are: the objects the archive stored (presigned links, manifest,
verification against the store), or the local recording folder while it is still there.

The archive (recorder/archive) is optional: `StorageAccess.of(sinks)` finds it among the manager's sinks
at call time, so the API works the same whether or not the service stores recordings."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from recorder.crypto.age import decrypt_chunks
from recorder.manifest.model import MANIFEST_NAME, Manifest, StoredObject
from recorder.manifest.verify import FolderSource, Source, StoreSource, VerifyReport, verify_recording
from recorder.storage.base import ObjectStore, StorageError
from recorder.storage.keys import recording_prefix

log = logging.getLogger(__name__)


def archive_of(sinks: list[Any]) -> Any:
    """The Archive among the manager's sinks, None when there is none (or no archive in this build)."""
    try:
        from recorder.archive import Archive  # noqa: PLC0415 - optional part, being built beside this
    except ImportError:
        return None
    return next((s for s in sinks if isinstance(s, Archive)), None)


@dataclass(frozen=True)
class StorageAccess:
    store: ObjectStore
    key_template: str
    public_key: Ed25519PublicKey | None = None
    playback: Sequence[object] | None = None
    """age identities with which encrypted objects are decrypted for playback (archive.encryption)."""

    @staticmethod
    def of(sinks: list[Any]) -> StorageAccess | None:
        """The archive's store among the sinks, if there is an archive (degrades to None)."""
        archive = archive_of(sinks)
        if archive is None:
            return None
        key: Ed25519PublicKey | None
        try:
            key = archive.running.key.public_key()
        except RuntimeError:  # not started
            key = None
        try:
            return StorageAccess(
                archive.store, archive.settings.storage.key_template, key, archive.playback_identities()
            )
        except AttributeError:  # an archive without these public pieces: local files only
            log.warning("the archive offers no store to the API; serving local files only")
            return None

    def prefix(self, recording_id: str, started_at: datetime, room_id: str | None) -> str:
        room = room_id if "{room_id" in self.key_template else None
        date = started_at.astimezone(UTC)
        return recording_prefix(self.key_template, recording_id=recording_id, date=date, room_id=room)


@dataclass(frozen=True)
class RecordingFiles:
    """(worker thread) One recording's files: `storage` None means local only."""

    recording_id: str
    folder: Path
    started_at: datetime
    room_id: str | None
    storage: StorageAccess | None

    def prefix(self) -> str | None:
        if self.storage is None:
            return None
        try:
            return self.storage.prefix(self.recording_id, self.started_at, self.room_id)
        except ValueError:  # ids that cannot form a key were never stored
            return None

    def stored(self) -> dict[str, int]:
        """Stored objects: name -> size (empty without storage or before the upload)."""
        prefix = self.prefix()
        if prefix is None or self.storage is None:
            return {}
        try:
            return {o.key[len(prefix) :]: o.size for o in self.storage.store.list(prefix)}
        except StorageError as exc:
            log.warning("recording %s: cannot list stored objects: %s", self.recording_id, exc)
            return {}

    def local(self) -> dict[str, int]:
        if not self.folder.is_dir():
            return {}
        return {
            str(p.relative_to(self.folder)): p.stat().st_size
            for p in sorted(self.folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }

    def local_path(self, name: str) -> Path | None:
        """The local file `name`, only inside the folder."""
        path = (self.folder / name).resolve()
        root = self.folder.resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def presign(self, name: str, expires: timedelta) -> str | None:
        prefix = self.prefix()
        if prefix is None or self.storage is None:
            return None
        return self.storage.store.presign_get(prefix + name, expires)

    def manifest(self) -> Manifest | None:
        data: bytes | None = None
        local = self.folder / MANIFEST_NAME
        if local.is_file():
            data = local.read_bytes()
        elif (prefix := self.prefix()) is not None and self.storage is not None:
            try:
                data = self.storage.store.get_bytes(prefix + MANIFEST_NAME)
            except StorageError:
                data = None
        if data is None:
            return None
        try:
            return Manifest.model_validate_json(data)
        except ValidationError as exc:
            log.error("recording %s: unreadable manifest: %s", self.recording_id, exc)
            return None

    def verify_source(self) -> Source | None:
        if (self.folder / MANIFEST_NAME).is_file():
            return FolderSource(self.folder)
        prefix = self.prefix()
        if prefix is not None and self.storage is not None and MANIFEST_NAME in self.stored():
            return StoreSource(self.storage.store, prefix)
        return None

    def verify(self) -> VerifyReport | None:
        source = self.verify_source()
        if source is None:
            return None
        return verify_recording(source, self.storage.public_key if self.storage else None)

    def encrypted_object(self, name: str) -> StoredObject | None:
        """The manifest's record of an encrypted object asked for by its name or its stored name."""
        manifest = self.manifest()
        if manifest is None:
            return None
        return next(
            (o for o in manifest.objects if o.encryption is not None and name in (o.name, o.stored_name)),
            None,
        )

    def decrypted(self, obj: StoredObject, first: int, last: int) -> Generator[bytes, None, None]:
        """(worker thread, lazily) Bytes `first..last` (inclusive) of an encrypted object's plaintext,
        decrypted with the playback identity as they stream from the store. age releases only chunks that
        authenticate; a Range start is reached by decrypting and skipping what comes before."""
        prefix = self.prefix()
        if prefix is None or self.storage is None or not self.storage.playback:
            raise StorageError("no playback identity", obj.name)
        pieces = self.storage.store.iter_chunks(prefix + obj.stored_name)
        stream = decrypt_chunks(pieces, self.storage.playback, obj.stored_name)
        offset = 0
        try:
            for chunk in stream:
                end = offset + len(chunk)
                if end > first and offset <= last:
                    yield chunk[max(0, first - offset) : min(len(chunk), last + 1 - offset)]
                offset = end
                if offset > last:
                    break
        finally:
            stream.close()

    def locked_until(self) -> datetime | None:
        """Object lock retention of the stored manifest, when the store enforces one in the future."""
        prefix = self.prefix()
        if prefix is None or self.storage is None:
            return None
        store = self.storage.store
        try:
            if not store.object_lock_enabled():
                return None
            retention = store.get_retention(prefix + MANIFEST_NAME)
        except StorageError:
            return None
        if retention is not None and retention.until > datetime.now(UTC):
            return retention.until
        return None

    def delete(self) -> int:
        """Delete every stored object and the local folder; returns the number of files removed."""
        count = 0
        prefix = self.prefix()
        if prefix is not None and self.storage is not None:
            for name in self.stored():
                self.storage.store.delete(prefix + name)
                count += 1
        if self.folder.is_dir():
            count += len(self.local())
            shutil.rmtree(self.folder)
        return count
