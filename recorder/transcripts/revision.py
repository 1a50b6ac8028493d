"""(worker thread) Add files of a finished recording (its transcript, a redacted copy) to its signed
manifest as a new revision and queue them for upload, as recorder/archive/composites.py does for
composites: encrypted to the recording's own recipients when it is encrypted; a re-run after a restart
finds them listed and only queues them again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recorder.archive.naming import key_function, stored_object
from recorder.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    revise_manifest,
    write_atomically,
    write_signed_manifest,
)
from recorder.models import MediaKind
from recorder.recording import RecordingInfo

if TYPE_CHECKING:
    from recorder.archive.archive import Archive


def kind_of(name: str) -> MediaKind | None:
    return MediaKind.AUDIO if name.endswith((".webm", ".mka", ".ogg")) else None


def add_to_manifest(archive: Archive, info: RecordingInfo, files: list[str]) -> Manifest:
    """The revision listing `files` (relative to the recording folder), signed, with the files, the archived
    previous revision and the manifest queued. Raises OSError, ValueError, ManifestError, CryptoError."""
    folder: Path = info.folder
    rid = info.recording_id
    key_for = key_function(archive.settings.storage.key_template, info)
    data = (folder / MANIFEST_NAME).read_bytes()
    signature = (folder / SIGNATURE_NAME).read_bytes()
    current = Manifest.model_validate_json(data)
    recipients = current.encryption.recipients if current.encryption is not None else None
    listed = {o.name: o for o in current.objects}
    if recipients is not None:
        added = []
        for name in files:
            if name in listed:  # sealed and listed before a restart
                added.append(listed[name])
                continue
            archive.sealing.path(rid, name).parent.mkdir(parents=True, exist_ok=True)
            added.append(archive.sealing.seal(folder, rid, name, key_for(name), kind_of(name), recipients))
    else:
        added = [stored_object(folder, n, key_for(n), kind_of(n)) for n in files]
    if all(
        (o.name, o.sha256, o.size) in {(x.name, x.sha256, x.size) for x in current.objects} for o in added
    ):
        manifest = current
    else:
        revised, archived = revise_manifest(current, data, signature, added, key_for)
        for name, content in archived.items():
            write_atomically(folder / name, content)
        manifest = write_signed_manifest(folder, revised, archive.running.key)
    names = set(files)
    if manifest.previous is not None:
        names |= {manifest.previous.name, manifest.previous.signature}
    encrypted = manifest.encryption is not None
    for obj in manifest.objects:
        if obj.name in names:
            archive.queue_object(folder, rid, obj, encrypted)
    archive.queue_manifest(folder, rid, key_for, encrypted)
    return manifest
