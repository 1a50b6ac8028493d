"""Verify a stored recording against its signed manifest.

A recording is a set of named files: a local folder, or the objects under a prefix of an object store
(names are keys minus the prefix, so a copied recording verifies wherever it lives). `verify_recording`
checks, and reports one `Problem` per failing object:

- `bad-signature`  manifest.json does not carry a valid Ed25519 signature in manifest.json.sig by the
                   given key (or, without one, by the key the manifest names): the manifest was edited;
- `bad-manifest`   manifest.json is not a valid callvault manifest;
- `missing`        an object the manifest lists (or manifest.json/.sig themselves) is not there;
- `changed`        an object's SHA-256 (or size) differs from the manifest's;
- `extra`          an object is there that the manifest does not list;
- `broken-chain`   a track's segment hash chain does not recompute, has holes, or disagrees with the
                   track's segments or with the stored segment objects;
- `bad-plaintext`  (with identities, for an encrypted recording) an encrypted object does not decrypt
                   with them, or decrypts to other bytes than the manifest's plaintext hash (and, for
                   segments, the hash chained when the segment closed) says; or the sealed participant
                   list does not decrypt;
- `bad-revision`   an earlier revision of the manifest (recorder/manifest/model.py, "Revisions"), archived
                   as manifest.N.json and manifest.N.json.sig, is missing, is not the bytes the next
                   revision names, is not signed by the key that checked manifest.json, or lists an object
                   (named in the problem), a track or a chain that a later revision dropped or changed.

The archived revisions are objects the manifest lists, so they are also checked (missing, changed) as
every object is; the revision chain is followed down to revision 1 (at most revise.MAX_REVISIONS).
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.crypto.age import CryptoError, decrypt_bytes, decrypt_chunks
from recorder.manifest.build import folder_files
from recorder.manifest.chain import chain_problems
from recorder.manifest.model import MANIFEST_NAME, SIGNATURE_NAME, Manifest, first_error
from recorder.manifest.revise import revision_problems
from recorder.manifest.signing import SigningKeyError, key_id, public_key_of, signature_valid
from recorder.storage.base import CHUNK, ObjectNotFoundError, ObjectStore


class ProblemKind(StrEnum):
    BAD_SIGNATURE = "bad-signature"
    BAD_MANIFEST = "bad-manifest"
    MISSING = "missing"
    CHANGED = "changed"
    EXTRA = "extra"
    BROKEN_CHAIN = "broken-chain"
    BAD_REVISION = "bad-revision"
    BAD_PLAINTEXT = "bad-plaintext"


class Problem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProblemKind
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.kind.value}: {self.name}: {self.detail}"


class VerifyReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    recording_id: str | None = None
    revision: int | None = Field(default=None, description="The manifest's revision (1 when never revised).")
    objects_checked: int = 0
    plaintext_checked: int = Field(default=0, description="Encrypted objects decrypted and hash-checked.")
    key_id: str | None = None
    key_pinned: bool = False
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


class Source(ABC):
    """Read access to one recording's files by name."""

    label: str

    @abstractmethod
    def names(self) -> set[str]: ...

    @abstractmethod
    def read(self, name: str) -> bytes | None:
        """The whole file, None when missing (used for the manifest and its signature)."""

    def chunks(self, name: str) -> Iterator[bytes] | None:
        """The file's bytes in pieces, None when missing (sources override it to stream)."""
        data = self.read(name)
        return None if data is None else iter([data])

    def digest(self, name: str) -> tuple[int, str] | None:
        """(size, hex sha256), None when missing."""
        pieces = self.chunks(name)
        if pieces is None:
            return None
        h = hashlib.sha256()
        size = 0
        try:
            for chunk in pieces:
                h.update(chunk)
                size += len(chunk)
        except (FileNotFoundError, ObjectNotFoundError):
            return None
        return size, h.hexdigest()


class FolderSource(Source):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.label = str(folder)

    def names(self) -> set[str]:
        return {
            *folder_files(self.folder),
            *(n for n in (MANIFEST_NAME, SIGNATURE_NAME) if (self.folder / n).is_file()),
        }

    def read(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def chunks(self, name: str) -> Iterator[bytes] | None:
        path = self.folder / name
        if not path.is_file():
            return None

        def read() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        return read()


class StoreSource(Source):
    """Objects under `prefix` (which should end with '/') in a store."""

    def __init__(self, store: ObjectStore, prefix: str, label: str | None = None) -> None:
        self.store = store
        self.prefix = prefix
        self.label = label or prefix

    def names(self) -> set[str]:
        return {info.key[len(self.prefix) :] for info in self.store.list(self.prefix)}

    def read(self, name: str) -> bytes | None:
        try:
            return self.store.get_bytes(self.prefix + name)
        except ObjectNotFoundError:
            return None

    def chunks(self, name: str) -> Iterator[bytes] | None:
        try:
            return self.store.iter_chunks(self.prefix + name)
        except ObjectNotFoundError:
            return None


def verify_recording(
    source: Source,
    public_key: Ed25519PublicKey | None = None,
    progress: Callable[[str], None] | None = None,
    identities: Sequence[object] | None = None,
) -> VerifyReport:
    """Check everything (see the module documentation). Without `public_key` the signature is checked
    against the key the manifest names, which proves the manifest unedited since signing but not who
    signed it; `key_pinned` in the report says which happened. With `identities` (age identities of one
    of the recording's recipients) encrypted objects are also decrypted and their plaintext checked."""
    report = VerifyReport(target=source.label, problems=[])
    problems = report.problems
    data = source.read(MANIFEST_NAME)
    if data is None:
        problems.append(Problem(kind=ProblemKind.MISSING, name=MANIFEST_NAME, detail="no manifest"))
        return report
    manifest: Manifest | None
    try:
        manifest = Manifest.model_validate_json(data)
    except ValidationError as exc:
        problems.append(Problem(kind=ProblemKind.BAD_MANIFEST, name=MANIFEST_NAME, detail=first_error(exc)))
        manifest = None
    key = _check_signature(source, data, manifest, public_key, report)
    if manifest is None:
        return report
    report.recording_id = manifest.recording_id
    report.revision = manifest.revision

    listed = {o.stored_name for o in manifest.objects}
    for obj in manifest.objects:
        if progress is not None:
            progress(obj.name)
        found = source.digest(obj.stored_name)
        report.objects_checked += 1
        if found is None:
            problems.append(
                Problem(kind=ProblemKind.MISSING, name=obj.name, detail="listed in the manifest, not stored")
            )
            continue
        size, sha = found
        if sha != obj.sha256 or size != obj.size:
            problems.append(
                Problem(
                    kind=ProblemKind.CHANGED,
                    name=obj.name,
                    detail=f"sha256 {sha} ({size} bytes), manifest says {obj.sha256} ({obj.size} bytes)",
                )
            )
    for name in sorted(source.names() - listed - {MANIFEST_NAME, SIGNATURE_NAME}):
        problems.append(Problem(kind=ProblemKind.EXTRA, name=name, detail="stored but not in the manifest"))
    _check_chains(manifest, problems)
    for name, detail in revision_problems(manifest, source.read, key):
        problems.append(Problem(kind=ProblemKind.BAD_REVISION, name=name, detail=detail))
    if identities is not None:
        _check_plaintext(source, manifest, identities, report)
    return report


def _check_plaintext(
    source: Source, manifest: Manifest, identities: Sequence[object], report: VerifyReport
) -> None:
    """Decrypt every encrypted object (streamed) and the sealed participants; compare with the manifest."""
    problems = report.problems
    if manifest.encryption is not None:
        try:
            decrypt_bytes(base64.b64decode(manifest.encryption.participants), identities, "participants")
        except (CryptoError, ValueError) as exc:
            problems.append(
                Problem(kind=ProblemKind.BAD_PLAINTEXT, name="encryption.participants", detail=str(exc))
            )
    for obj in manifest.objects:
        if obj.encryption is None:
            continue
        pieces = source.chunks(obj.stored_name)
        if pieces is None:
            continue  # reported as missing already
        h = hashlib.sha256()
        size = 0
        try:
            for chunk in decrypt_chunks(pieces, identities, obj.stored_name):
                h.update(chunk)
                size += len(chunk)
        except (CryptoError, ObjectNotFoundError) as exc:
            problems.append(Problem(kind=ProblemKind.BAD_PLAINTEXT, name=obj.name, detail=str(exc)))
            continue
        report.plaintext_checked += 1
        if h.hexdigest() != obj.plaintext_sha256 or size != obj.plaintext_size:
            problems.append(
                Problem(
                    kind=ProblemKind.BAD_PLAINTEXT,
                    name=obj.name,
                    detail=f"decrypts to sha256 {h.hexdigest()} ({size} bytes), manifest says"
                    f" {obj.plaintext_sha256} ({obj.plaintext_size} bytes)",
                )
            )


def _check_signature(
    source: Source,
    data: bytes,
    manifest: Manifest | None,
    public_key: Ed25519PublicKey | None,
    report: VerifyReport,
) -> Ed25519PublicKey | None:
    """Check manifest.json's signature; the key it was checked with (or would have been, when the
    signature file is missing), None when there is none."""
    problems = report.problems
    key = _signing_key(manifest, public_key)
    signature = source.read(SIGNATURE_NAME)
    if signature is None:
        problems.append(
            Problem(kind=ProblemKind.MISSING, name=SIGNATURE_NAME, detail="the manifest is not signed")
        )
        return None if isinstance(key, str) else key
    report.key_pinned = public_key is not None
    if isinstance(key, str):
        problems.append(Problem(kind=ProblemKind.BAD_SIGNATURE, name=MANIFEST_NAME, detail=key))
        return None
    report.key_id = key_id(key)
    if not signature_valid(data, signature, key):
        named = manifest.signer.key_id if manifest is not None and manifest.signer is not None else None
        detail = "signature does not match: the manifest was edited after signing"
        if named is not None and named != report.key_id:
            detail += (
                f" or was signed by another key (manifest names {named[:16]}…, checked {report.key_id[:16]}…)"
            )
        problems.append(Problem(kind=ProblemKind.BAD_SIGNATURE, name=MANIFEST_NAME, detail=detail))
    return key


def _signing_key(manifest: Manifest | None, public_key: Ed25519PublicKey | None) -> Ed25519PublicKey | str:
    """The key to check signatures with: the pinned one, else the one the manifest names; or why none."""
    if public_key is not None:
        return public_key
    if manifest is None or manifest.signer is None:
        return "no public key given and the manifest names none"
    try:
        return public_key_of(manifest.signer)
    except SigningKeyError as exc:
        return str(exc)


def _check_chains(manifest: Manifest, problems: list[Problem]) -> None:
    chains = {c.track: c for c in manifest.chains}
    objects = {o.name: o for o in manifest.objects}
    for track in manifest.tracks:
        chain = chains.pop(track.name, None)
        if chain is None:
            if track.segments:
                problems.append(
                    Problem(kind=ProblemKind.BROKEN_CHAIN, name=track.name, detail="track has no chain")
                )
            continue
        for message in chain_problems(manifest.recording_id, chain):
            problems.append(Problem(kind=ProblemKind.BROKEN_CHAIN, name=track.name, detail=message))
        recorded = {s.index: s.sha256 for s in track.segments}
        chained = {link.index: link for link in chain.links}
        for index in sorted(set(recorded) | set(chained)):
            link = chained.get(index)
            if link is None:
                problems.append(
                    Problem(
                        kind=ProblemKind.BROKEN_CHAIN,
                        name=track.name,
                        detail=f"segment {index} is not chained",
                    )
                )
            elif recorded.get(index) != link.sha256:
                problems.append(
                    Problem(
                        kind=ProblemKind.BROKEN_CHAIN,
                        name=link.path,
                        detail=f"segment {index}: chained hash differs from the track summary's",
                    )
                )
            else:
                obj = objects.get(link.path)
                if obj is not None and obj.content_sha256 != link.sha256:
                    problems.append(
                        Problem(
                            kind=ProblemKind.BROKEN_CHAIN,
                            name=link.path,
                            detail=f"segment {index}: stored object differs from the hash chained at close",
                        )
                    )
    for track_name in sorted(chains):
        problems.append(
            Problem(kind=ProblemKind.BROKEN_CHAIN, name=track_name, detail="chain of an unknown track")
        )
