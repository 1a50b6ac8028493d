"""Manifest revisions (the scheme is documented in recorder/manifest/model.py).

`revise_manifest` makes the next revision of a signed manifest listing objects added after the seal, and
gives the files to archive beside it (the current revision's exact bytes and signature); the caller signs
the revision (build.signed_manifest_bytes) and writes everything. `revision_problems` walks a manifest's
`previous` revisions down to revision 1 and says what does not hold (verify.py reports it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from recorder.manifest.build import ManifestError, content_type_for
from recorder.manifest.model import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    Manifest,
    PreviousRevision,
    RemovedObject,
    StoredObject,
    first_error,
)
from recorder.manifest.signing import SigningKeyError, key_id, public_key_of, signature_valid

MAX_REVISIONS: Final = 100
"""How many earlier revisions `revision_problems` follows before it gives up (with a problem)."""

_ARCHIVED = re.compile(r"manifest\.[0-9]+\.json(\.sig)?")


def revision_names(revision: int) -> tuple[str, str]:
    """(archived manifest, archived signature) of `revision`: ("manifest.N.json", "manifest.N.json.sig")."""
    if revision < 1:
        raise ValueError(f"revision {revision}: revisions count from 1")
    name = f"manifest.{revision}.json"
    return name, f"{name}.sig"


def is_reserved(name: str) -> bool:
    """Whether `name` is the manifest, its signature or an archived revision (no added object may be)."""
    return name in {MANIFEST_NAME, SIGNATURE_NAME} or _ARCHIVED.fullmatch(name) is not None


def revise_manifest(
    current: Manifest,
    current_bytes: bytes,
    current_signature: bytes,
    added: Sequence[StoredObject],
    key_for: Callable[[str], str],
    removed: Sequence[RemovedObject] = (),
) -> tuple[Manifest, dict[str, bytes]]:
    """(the next revision, unsigned; {archived file name: bytes} to write beside it).

    `removed`: objects this revision drops on purpose, listed under the manifest's `removed` (each must be
    a listed object, with its SHA-256 and size, and `revision` the new revision's number).

    `current` must be the manifest in `current_bytes`, signed by the key it names in `current_signature`.
    An added object already listed with the same SHA-256 and size is skipped (a re-run adds nothing twice);
    one listed with other content, or named like the manifest or an archived revision, is refused with
    ManifestError, as is a current manifest that is not the bytes given or not validly signed."""
    _check_current(current, current_bytes, current_signature)
    name, signature = revision_names(current.revision)
    archived = {name: current_bytes, signature: current_signature}
    objects = {o.name: o for o in current.objects}
    for archived_name, content in archived.items():
        _merge(objects, _stored(archived_name, content, key_for))
    for obj in added:
        if is_reserved(obj.name):
            raise ManifestError(f"{obj.name}: reserved for the manifest and its revisions")
        _merge(objects, obj)
    for gone in removed:
        listed = objects.pop(gone.name, None)
        if listed is None or (listed.sha256, listed.size) != (gone.sha256, gone.size):
            raise ManifestError(
                f"{gone.name}: cannot remove it, revision {current.revision} lists no such object"
            )
        if gone.revision != current.revision + 1 or is_reserved(gone.name):
            raise ManifestError(f"{gone.name}: not removable by revision {current.revision + 1}")
    previous = PreviousRevision(
        revision=current.revision,
        name=name,
        signature=signature,
        sha256=hashlib.sha256(current_bytes).hexdigest(),
    )
    revised = current.model_copy(
        deep=True,
        update={
            "revision": current.revision + 1,
            "previous": previous,
            "objects": sorted(objects.values(), key=lambda o: o.name),
            "signer": None,
            "removed": [*current.removed, *removed],
        },
    )
    return revised, archived


def _check_current(current: Manifest, data: bytes, signature: bytes) -> None:
    try:
        parsed = Manifest.model_validate_json(data)
    except ValidationError as exc:
        raise ManifestError(f"{MANIFEST_NAME}: the current bytes are not a manifest: {exc}") from exc
    if parsed != current:
        raise ManifestError(f"{MANIFEST_NAME}: the current bytes are not the manifest being revised")
    if current.signer is None:
        raise ManifestError(f"{MANIFEST_NAME}: revision {current.revision} is not signed")
    try:
        key = public_key_of(current.signer)
    except SigningKeyError as exc:
        raise ManifestError(f"{MANIFEST_NAME}: {exc}") from exc
    if not signature_valid(data, signature, key):
        raise ManifestError(f"{SIGNATURE_NAME}: not a valid signature of revision {current.revision}")


def _stored(name: str, content: bytes, key_for: Callable[[str], str]) -> StoredObject:
    return StoredObject(
        name=name,
        key=key_for(name),
        size=len(content),
        content_type=content_type_for(name),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def _merge(objects: dict[str, StoredObject], obj: StoredObject) -> None:
    listed = objects.get(obj.name)
    if listed is None:
        objects[obj.name] = obj
    elif (listed.sha256, listed.size) != (obj.sha256, obj.size):
        raise ManifestError(
            f"{obj.name}: already listed with sha256 {listed.sha256} ({listed.size} bytes),"
            f" cannot add sha256 {obj.sha256} ({obj.size} bytes)"
        )
    # else: the same content is listed already; its record (key, content type) stands


# -- checking ------------------------------------------------------------------------------------------


def revision_problems(
    manifest: Manifest,
    read: Callable[[str], bytes | None],
    key: Ed25519PublicKey | None,
) -> list[tuple[str, str]]:
    """(name, what is wrong) for each problem of `manifest`'s earlier revisions, empty when they hold.

    `read(name)` gives a file of the recording (None when missing); `key` is the key that checked the
    current manifest's signature, which every archived revision must be signed by too (None: the
    signatures are not checked, the current one having failed already)."""
    problems: list[tuple[str, str]] = []
    current, current_name = manifest, MANIFEST_NAME
    for _ in range(MAX_REVISIONS):
        previous = current.previous
        if previous is None:
            if current.revision != 1:
                problems.append((current_name, f"revision {current.revision} names no previous revision"))
            return problems
        older = _previous(current, previous, current_name, read, key, problems)
        if older is None:
            return problems
        current, current_name = older, previous.name
    if current.previous is not None:
        problems.append((current_name, f"more than {MAX_REVISIONS} revisions: earlier ones are not checked"))
    return problems


def _previous(
    current: Manifest,
    previous: PreviousRevision,
    current_name: str,
    read: Callable[[str], bytes | None],
    key: Ed25519PublicKey | None,
    problems: list[tuple[str, str]],
) -> Manifest | None:
    """Check `previous`, the revision `current` replaced; it, parsed, when it can be followed further."""
    number = previous.revision
    if number != current.revision - 1:
        problems.append((current_name, f"revision {current.revision} names revision {number} as previous"))
    if (previous.name, previous.signature) != revision_names(number):
        problems.append(
            (
                current_name,
                f"revision {number} archived as {previous.name}, expected {revision_names(number)[0]}",
            )
        )
        return None
    data = read(previous.name)
    if data is None:
        problems.append(
            (previous.name, f"revision {number} is missing: the revision chain cannot be checked")
        )
        return None
    sha = hashlib.sha256(data).hexdigest()
    if sha != previous.sha256:
        problems.append(
            (
                previous.name,
                f"sha256 {sha}, revision {current.revision} says {previous.sha256}: not revision {number}",
            )
        )
        return None
    try:
        older = Manifest.model_validate_json(data)
    except ValidationError as exc:
        problems.append((previous.name, f"not a valid manifest: {first_error(exc)}"))
        return None
    if older.revision != number:
        problems.append((previous.name, f"is revision {older.revision}, expected revision {number}"))
    if older.recording_id != current.recording_id:
        problems.append(
            (
                previous.name,
                f"recording {older.recording_id}, revision {current.revision} is of {current.recording_id}",
            )
        )
    _check_signature(older, data, previous.signature, read, key, problems)
    _check_kept(older, current, previous.name, problems)
    return older


def _check_signature(
    older: Manifest,
    data: bytes,
    name: str,
    read: Callable[[str], bytes | None],
    key: Ed25519PublicKey | None,
    problems: list[tuple[str, str]],
) -> None:
    signature = read(name)
    if signature is None:
        problems.append((name, f"revision {older.revision}'s signature is missing"))
        return
    if key is None or signature_valid(data, signature, key):
        return
    checked = key_id(key)
    detail = f"not a valid signature of revision {older.revision} by key {checked[:16]}…"
    named = older.signer.key_id if older.signer is not None else None
    if named is not None and named != checked:
        detail += f" (revision {older.revision} names key {named[:16]}…)"
    problems.append((name, detail))


def _check_kept(older: Manifest, current: Manifest, name: str, problems: list[tuple[str, str]]) -> None:
    """Every object, track and chain of `older` (archived as `name`) is in `current`, unchanged, but the
    objects a later revision removed on purpose (listed in `current.removed` with the same content); and
    every removal `older` lists is still listed."""
    then, now = older.revision, current.revision
    gone = {(r.name, r.sha256, r.size) for r in current.removed if r.revision > then}
    for obj in older.objects:
        kept = current.object(obj.name)
        if kept is None and (obj.name, obj.sha256, obj.size) in gone:
            continue
        if kept is None:
            problems.append((obj.name, f"listed in revision {then} ({name}), dropped by revision {now}"))
        elif (kept.sha256, kept.size) != (obj.sha256, obj.size):
            problems.append(
                (
                    obj.name,
                    f"revision {then} ({name}) lists sha256 {obj.sha256} ({obj.size} bytes),"
                    f" revision {now} lists {kept.sha256} ({kept.size} bytes)",
                )
            )
    for what, before, after in (
        ("track", {t.name: t for t in older.tracks}, {t.name: t for t in current.tracks}),
        ("chain", {c.track: c for c in older.chains}, {c.track: c for c in current.chains}),
    ):
        for track in sorted(before.keys() | after.keys()):
            if before.get(track) != after.get(track):
                problems.append((name, f"{what} {track} differs in revision {now}"))
    for removal in older.removed:
        if removal not in current.removed:
            problems.append(
                (removal.name, f"removed in revision {removal.revision}, not listed so in revision {now}")
            )
