"""Restore a stored recording's original files: decrypt what is encrypted, copy what is not, check each
file against the signed manifest's hashes on the way (`callvault decrypt`, `callvault composite
--identity`).

The manifest names every file by its original name; encrypted objects are read from `<name>.age`,
streamed through age (memory stays flat for any size) and written to `<out>/<name>` only once their
plaintext hash matched (a temporary file until then). Nothing in `out` is ever overwritten.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from recorder.crypto.age import CryptoError, decrypt_chunks
from recorder.errors import CallVaultError
from recorder.manifest.model import MANIFEST_NAME, SIGNATURE_NAME, Manifest, StoredObject, first_error
from recorder.manifest.verify import Source
from recorder.storage.keys import check_name


class RestoreError(CallVaultError):
    """The recording cannot be restored (no manifest, a target file exists, a wrong key): one line."""


class Restored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    decrypted: list[str]
    copied: list[str]
    failed: dict[str, str]
    """name -> why (missing, does not decrypt, plaintext differs from the manifest's hash)."""


def read_manifest(source: Source) -> Manifest:
    data = source.read(MANIFEST_NAME)
    if data is None:
        raise RestoreError(f"{source.label}: no {MANIFEST_NAME}")
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        why = first_error(exc)
        raise RestoreError(f"{source.label}: {MANIFEST_NAME} is not a callvault manifest: {why}") from None


def restore_recording(source: Source, identities: Sequence[object] | None, out: Path) -> Restored:
    """Write the recording's original files into `out` (see the module documentation). `identities`
    may be None for a recording stored unencrypted. RestoreError before anything is written when the
    manifest is unreadable, a file would be overwritten or the identities do not fit."""
    manifest = read_manifest(source)
    objects = [*manifest.objects]
    encrypted = [o for o in objects if o.encryption is not None]
    if encrypted and identities is None:
        raise RestoreError(f"{source.label}: the recording is encrypted; pass --identity KEYFILE")
    targets = [out / check_name(o.name) for o in objects] + [out / MANIFEST_NAME, out / SIGNATURE_NAME]
    taken = [str(t) for t in targets if t.exists()]
    if taken:
        raise RestoreError(
            f"{out}: would overwrite {taken[0]}" + (f" and {len(taken) - 1} more" if len(taken) > 1 else "")
        )
    if encrypted and identities is not None:
        _check_key(source, encrypted[0], identities)
    result = Restored(recording_id=manifest.recording_id, decrypted=[], copied=[], failed={})
    for obj in objects:
        pieces = source.chunks(obj.stored_name)
        if pieces is None:
            result.failed[obj.name] = "not stored"
            continue
        try:
            if obj.encryption is not None and identities is not None:
                _write_checked(
                    decrypt_chunks(pieces, identities, obj.stored_name), out / obj.name, obj, plain=True
                )
                result.decrypted.append(obj.name)
            else:
                _write_checked(pieces, out / obj.name, obj, plain=False)
                result.copied.append(obj.name)
        except (CryptoError, RestoreError) as exc:
            result.failed[obj.name] = str(exc)
    for name in (MANIFEST_NAME, SIGNATURE_NAME):
        data = source.read(name)
        if data is not None:
            _write_new(out / name, iter([data]))
    return result


def _check_key(source: Source, first: StoredObject, identities: Sequence[object]) -> None:
    """Fail before writing anything when the identities are not recipients (age checks the header)."""
    pieces = source.chunks(first.stored_name)
    if pieces is None:
        return
    stream = decrypt_chunks(pieces, identities, first.stored_name)
    try:
        next(stream, None)
    except CryptoError as exc:
        raise RestoreError(str(exc)) from None
    finally:
        stream.close()


def _write_checked(pieces: Iterator[bytes], target: Path, obj: StoredObject, *, plain: bool) -> None:
    expected = (obj.plaintext_sha256, obj.plaintext_size) if plain else (obj.sha256, obj.size)
    _write_new(target, pieces, expected)


def _write_new(
    target: Path, pieces: Iterator[bytes], expected: tuple[str | None, int | None] | None = None
) -> tuple[str, int]:
    """Write to a temporary file, check the hash, then link it into place (never over an existing file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restore.tmp")
    h = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as f:
            for chunk in pieces:
                h.update(chunk)
                size += len(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if expected is not None and (h.hexdigest(), size) != expected:
            raise RestoreError(
                f"{target.name}: restored bytes have sha256 {h.hexdigest()} ({size} bytes), the manifest says"
                f" {expected[0]} ({expected[1]} bytes)"
            )
        os.link(tmp, target)  # fails if something appeared there meanwhile: nothing is overwritten
    finally:
        tmp.unlink(missing_ok=True)
    return h.hexdigest(), size
