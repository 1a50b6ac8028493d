"""Encryption of a recording's objects before they leave the machine (archive.encryption).

Which keys: a recording is encrypted when its room's policy names recipients (`RecordingInfo.
encryption_recipients`) or the service has default ones (`recipients`, `recipients_file`); the escrow
recipients are added to every encrypted recording. The choice is made once, when the recording starts,
and written durably to `<spool>/encryption/<recording id>.json`, so a restart (a resumed call, a crash
recovery, composites built later) encrypts the rest of the recording to the same keys.

Where the bytes go: each file of the recording is encrypted (pyrage, file to file) into
`<spool>/sealed/<recording id>/<name>.age`, and that ciphertext is what the spool uploads
(key: the file's key + `.age`). The manifest and its signature stay readable (they must verify without a
key) and are copied there too, so that everything still to upload lives in the sealed folder and the
recording's plaintext folder can be deleted as soon as nothing needs it (recorder/archive/archive.py).

What is hashed: a segment is not read again for a hash (its plaintext hash is the one taken when it
closed; its ciphertext hash is the one the uploader takes of what it sends, filled in before the manifest
is built); a track file, summary or any file sealed at the end is hashed on both sides.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from recorder.archive.settings import EncryptionSettings
from recorder.crypto.age import (
    AGE_CONTENT_TYPE,
    AGE_SUFFIX,
    encrypt_bytes,
    encrypt_file,
    fsync_tree,
    parse_recipients,
)
from recorder.durable_json import model_path, remove_model, write_model
from recorder.manifest import Encryption, Participant, StoredObject
from recorder.models import MediaKind
from recorder.recording import RecordingInfo
from recorder.storage.keys import check_id, check_name

log = logging.getLogger(__name__)

SEALED_DIR = "sealed"
KEYS_DIR = "encryption"
UNHASHED = "0" * 64
"""`StoredObject.sha256` of a sealed segment whose ciphertext hash is not taken at sealing: the uploader
hashes what it sends, and the archive fills that in (or hashes the spooled file once) before the manifest
is built (recorder/archive/archive.py `_ciphertext_hashes`); it never reaches a manifest."""


class RecordingKeys(BaseModel):
    """The recipients a recording is encrypted to, chosen when it started."""

    model_config = ConfigDict(extra="forbid")

    recording_id: str
    recipients: list[str]


class Sealing:
    """The archive's encryption of recordings (see the module documentation)."""

    def __init__(self, spool_dir: Path, settings: EncryptionSettings) -> None:
        self.dir = spool_dir / SEALED_DIR
        self.keys_dir = spool_dir / KEYS_DIR
        self.default = settings.default_recipients()
        self.escrow = list(settings.escrow)
        self._parsed: dict[tuple[str, ...], list[object]] = {}

    @property
    def enabled_by_default(self) -> bool:
        return bool(self.default)

    def recipients_for(self, info: RecordingInfo) -> list[str] | None:
        """(blocking: a small file) The recording's recipients, None when it is stored unencrypted:
        what was chosen when it started, or chosen now and written durably."""
        rid = check_id(info.recording_id)
        path = model_path(self.keys_dir, rid)
        if path.is_file():
            return RecordingKeys.model_validate_json(path.read_bytes()).recipients or None
        chosen = list(info.encryption_recipients or self.default)
        if chosen:
            chosen = list(dict.fromkeys(chosen + self.escrow))
        write_model(self.keys_dir, rid, RecordingKeys(recording_id=rid, recipients=chosen))
        return chosen or None

    def known(self, recording_id: str) -> list[str] | None:
        """(blocking: a small file) The recipients chosen when the recording started; None when it is
        stored unencrypted or unknown here."""
        path = model_path(self.keys_dir, check_id(recording_id))
        if not path.is_file():
            return None
        return RecordingKeys.model_validate_json(path.read_bytes()).recipients or None

    def forget(self, recording_id: str) -> None:
        """The recording is fully stored and its local folders are gone: drop its key choice."""
        remove_model(self.keys_dir, check_id(recording_id))
        folder = self.folder(recording_id)
        if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)

    def sync(self, recording_id: str) -> None:
        """(blocking) Make the recording's sealed files durable: before its plaintext is deleted, the
        ciphertext must survive a power loss (segments were written without a per-file fsync; most are
        on disk by then and cost nothing to sync)."""
        folder = self.folder(recording_id)
        if folder.is_dir():
            fsync_tree(folder)

    def folder(self, recording_id: str) -> Path:
        return self.dir / check_id(recording_id)

    def path(self, recording_id: str, name: str) -> Path:
        """Where the ciphertext of the recording's file `name` is spooled."""
        return self.folder(recording_id) / (check_name(name) + AGE_SUFFIX)

    def clear_copy(self, folder: Path, recording_id: str, name: str) -> Path:
        """(blocking) Copy a file that is stored readable (the manifest, its signature, archived
        revisions) into the sealed folder, so it can be uploaded after the plaintext folder is gone."""
        target = self.folder(recording_id) / check_name(name)
        if not (folder / name).is_file() and target.is_file():
            return target  # copied before a restart, the plaintext folder is gone since
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(folder / name, tmp)
        tmp.replace(target)
        return target

    def _recipients(self, recipients: Sequence[str]) -> list[object]:
        key = tuple(recipients)
        if key not in self._parsed:
            self._parsed[key] = parse_recipients(recipients)
        return self._parsed[key]

    def seal(
        self,
        folder: Path,
        recording_id: str,
        name: str,
        key: str,
        kind: MediaKind | None,
        recipients: Sequence[str],
        plaintext_sha256: str | None = None,
    ) -> StoredObject:
        """(blocking) Encrypt the recording's file `name`; the manifest's record of the stored object.
        `plaintext_sha256`: the file's hash taken when it was written (a segment's, at its close), not
        taken again (a file changed since would decrypt to other bytes than the manifest says, which
        `callvault verify --identity` reports); such a file is uploaded during the call, so its
        ciphertext hash is not taken either but comes from the upload (`sha256` is UNHASHED)."""
        target = self.path(recording_id, name)
        sealed = encrypt_file(
            folder / name,
            target,
            self._recipients(recipients),
            durable=False,
            plain_sha256=plaintext_sha256,
            hash_ciphertext=plaintext_sha256 is None,
        )
        return StoredObject(
            name=name,
            key=key + AGE_SUFFIX,
            size=sealed.size,
            content_type=AGE_CONTENT_TYPE,
            sha256=sealed.sha256 or UNHASHED,
            encryption="age",
            plaintext_sha256=sealed.plain_sha256,
            plaintext_size=sealed.plain_size,
        )

    def sealed_participants(
        self, participants: Sequence[Participant], recipients: Sequence[str]
    ) -> tuple[list[Participant], Encryption]:
        """(ids only, the manifest's encryption section with the full list encrypted)."""
        data = json.dumps([p.model_dump(mode="json") for p in participants], sort_keys=True).encode()
        encrypted = encrypt_bytes(data, self._recipients(recipients))
        section = Encryption(recipients=list(recipients), participants=base64.b64encode(encrypted).decode())
        return [Participant(id=p.id) for p in participants], section
