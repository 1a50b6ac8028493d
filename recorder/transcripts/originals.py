"""Deleting a recording's unredacted originals once a redacted copy of it is stored
(`transcripts.keep_original = false`, the PCI answer), the way retention deletes
(recorder/lifecycle/deletion.py):

1. `plan_removal` (pure) names what the copy `redacted-<n>/` replaces: each redacted audio track's file
   and its segments, every composite built from the unredacted audio (the copy holds those built again),
   the copies made before it (`redacted-<k>/` media and transcripts: they lack this copy's intervals),
   and, for a manual redaction, the transcript stored before it (the copy holds it masked);
2. `protection` says why nothing may be deleted: an object under legal hold or object lock in the store
   (the catalog's legal hold is checked by the caller);
3. `revise` writes the manifest revision that lists each removed object under `removed` (name, SHA-256,
   size, when, why), so `callvault verify` of the recording still passes, and queues it for upload;
4. once it is stored, `purge` removes each object from the store for good (every version) and from the
   local folder.
The caller (recorder/transcripts/service.py) records each deleted object in the catalog, audits the
deletion and announces it with recording.deleted. Every step is idempotent: a job resumed after a restart
or a store outage does them again (what is already listed, or gone, is skipped).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from recorder.archive.naming import key_function
from recorder.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    RemovedObject,
    StoredObject,
    revise_manifest,
    write_atomically,
    write_signed_manifest,
)
from recorder.recording import RecordingInfo
from recorder.storage.base import ObjectNotFoundError, ObjectStore
from recorder.storage.local import LocalStore

if TYPE_CHECKING:
    from recorder.archive.archive import Archive

RULE = "transcripts.keep_original"
"""The rule named in the catalog's deleted objects and in recording.deleted."""
MEDIA_SUFFIXES = (".webm", ".mka", ".mkv", ".ogg", ".m4a", ".mp4")
TRANSCRIPT_NAMES = ("transcript.json", "transcript.vtt")


def reason_for(copy: str) -> str:
    return f"unredacted; replaced by the redacted copy {copy}/ ({RULE} = false)"


def _is_composite(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return parts[0].startswith("composite") or PurePosixPath(name).name.startswith("composite")


def plan_removal(
    manifest: Manifest, copy: str, tracks: list[str], transcript_too: bool
) -> list[StoredObject]:
    """The objects of `manifest` that the redacted copy `copy` ('redacted-<n>') replaces: see the module
    documentation. `tracks`: the audio track files the copy holds redacted (names in the folder)."""
    segments: set[str] = set()
    files = set(tracks)
    for track in manifest.tracks:
        if track.file in files:
            chain = next((c for c in manifest.chains if c.track == track.name), None)
            segments |= {link.path for link in chain.links} if chain is not None else set()
    out = []
    for obj in manifest.objects:
        name = obj.name
        top = PurePosixPath(name).parts[0]
        earlier_copy = top.startswith("redacted-") and top != copy and "/" in name
        if (
            name in files
            or name in segments
            or (not top.startswith("redacted-") and _is_composite(name) and name.endswith(MEDIA_SUFFIXES))
            or (transcript_too and name in TRANSCRIPT_NAMES)
            or (earlier_copy and name.endswith((*MEDIA_SUFFIXES, *TRANSCRIPT_NAMES)))
        ):
            out.append(obj)
    return out


def protection(store: ObjectStore, objects: list[StoredObject]) -> str | None:
    """(worker thread) Why an object to delete is protected in the store, None when none is (as retention
    checks, recorder/lifecycle/deletion.py). Raises StorageError when the store cannot say."""
    lock = store.object_lock_enabled()
    now = datetime.now(UTC)
    for obj in objects:
        try:
            if store.legal_hold(obj.key):
                return f"{obj.name} is under legal hold in the store"
            retention = store.get_retention(obj.key) if lock or isinstance(store, LocalStore) else None
        except ObjectNotFoundError:
            continue
        if retention is not None and retention.until > now:
            return f"{obj.name} is under object lock until {retention.until.isoformat()}"
    return None


def revise(archive: Archive, info: RecordingInfo, objects: list[StoredObject], reason: str) -> Manifest:
    """(worker thread) The revision that lists `objects` as removed, signed, written and queued with the
    archived previous revision (the current one when it lists them removed already). Raises OSError,
    ValueError, ManifestError."""
    folder = info.folder
    data = (folder / MANIFEST_NAME).read_bytes()
    signature = (folder / SIGNATURE_NAME).read_bytes()
    current = Manifest.model_validate_json(data)
    listed = {o.name: o for o in current.objects}
    gone = [o for o in objects if o.name in listed]
    if not gone:
        return current
    key_for = key_function(archive.settings.storage.key_template, info)
    at = datetime.now(UTC)
    removed = [
        RemovedObject(
            name=o.name,
            sha256=o.sha256,
            size=o.size,
            revision=current.revision + 1,
            removed_at=at,
            reason=reason,
        )
        for o in gone
    ]
    revised, archived = revise_manifest(current, data, signature, [], key_for, removed)
    for name, content in archived.items():
        write_atomically(folder / name, content)
    manifest = write_signed_manifest(folder, revised, archive.running.key)
    encrypted = manifest.encryption is not None
    assert manifest.previous is not None
    names = {manifest.previous.name, manifest.previous.signature}
    for obj in manifest.objects:
        if obj.name in names:
            archive.queue_object(folder, info.recording_id, obj, encrypted)
    archive.queue_manifest(folder, info.recording_id, key_for, encrypted)
    return manifest


def purge(store: ObjectStore | None, folder: Path, objects: list[StoredObject]) -> None:
    """(worker thread) Each object out of the store for good (every version) and out of the local folder
    (names come from the signed manifest, which admits no '..'); what is gone already is not an error.
    Raises StorageError."""
    for obj in objects:
        if store is not None:
            store.purge(obj.key)
        (folder / obj.name).unlink(missing_ok=True)
        parent = (folder / obj.name).parent
        if parent != folder:
            with contextlib.suppress(OSError):
                parent.rmdir()  # a track's segment folder, once empty


def local_originals(folder: Path, tracks: list[str]) -> list[str]:
    """(worker thread) Without an archive: the local unredacted track files (and composites) to delete."""
    names = [t for t in tracks if (folder / t).is_file()]
    names += [
        p.name
        for p in sorted(folder.iterdir())
        if p.is_file() and _is_composite(p.name) and p.name.endswith(MEDIA_SUFFIXES)
    ]
    return names
