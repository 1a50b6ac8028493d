"""Evidence bundles: one ZIP per recording that its recipient can check offline (`callvault verify
BUNDLE`, recorder/lifecycle/bundle_verify.py), without any CallVault server.

Layout (entries stored uncompressed, so a changed byte stays in the entry it belongs to):
    README.txt             for the recipient: what this is and how to check it
    public-key.pem         the Ed25519 key the manifests and bundle.json are signed with
    recording/<name>       the recording's objects exactly as stored (manifest.json and manifest.json.sig,
                           media; encrypted objects stay encrypted: see below)
    audit.jsonl            the audit log's entries about the recording (each entry's own hash checks)
    bundle.json            the index: every entry above with its size and SHA-256, what was left out
    bundle.json.sig        base64 Ed25519 signature over the exact bytes of bundle.json, one newline

Objects are copied as stored: a recording encrypted at rest is exported as its ciphertext objects plus
manifests, unless the export asked for decryption (`decrypt`, admin/auditor, the service holding a
playback identity): then each encrypted object `<name>.age` is handed over as its plaintext `<name>`,
bundle.json says `decrypted: true` and lists, per such file, the ciphertext's name, size and SHA-256 and
the plaintext's; the signed manifest's `plaintext_sha256` is what the verifier checks the plaintext against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field

from recorder.api.audit import AuditEntry
from recorder.manifest.signing import key_id, public_key_pem

FORMAT = "callvault-evidence-bundle/1"
INDEX_NAME = "bundle.json"
INDEX_SIGNATURE = "bundle.json.sig"
KEY_NAME = "public-key.pem"
README_NAME = "README.txt"
AUDIT_NAME = "audit.jsonl"
RECORDING_DIR = "recording/"

README = """CallVault evidence bundle
=========================

This archive holds one recording as CallVault stored it, with what you need to check that nothing in it
was changed since it was exported:

  recording/          the recording's files exactly as stored: manifest.json (the list of every file
                      with its SHA-256), manifest.json.sig (its Ed25519 signature) and the media files
  public-key.pem      the Ed25519 public key the manifest and this bundle's index are signed with
  audit.jsonl         the audit log's entries about this recording (who viewed, held, exported it)
  bundle.json         the index of this archive: every file with its size and SHA-256
  bundle.json.sig     the Ed25519 signature (base64) over the exact bytes of bundle.json

How to check it
---------------
With CallVault installed (no server needed, no network):

    callvault verify THIS-FILE.zip --public-key KEY.pem

where KEY.pem is the public key the sender gave you through another channel (without --public-key the
key inside the bundle is used, which proves integrity but not origin). It prints one line per problem,
naming the file, and exits 0 when everything holds.

By hand, with standard tools:
  1. Check bundle.json.sig is a valid Ed25519 signature of bundle.json under the sender's public key
     (for example with OpenSSL 3: base64 -d bundle.json.sig > sig.bin;
      openssl pkeyutl -verify -pubin -inkey KEY.pem -rawin -in bundle.json -sigfile sig.bin).
  2. Check every file listed in bundle.json has the listed size and SHA-256 (sha256sum).
  3. Check manifest.json.sig the same way over recording/manifest.json, and each recording file against
     manifest.json.

Files listed under "excluded" in bundle.json were not asked for in this export; the manifest still
lists them.
"""

DECRYPTED_README = """
Decrypted files
---------------
This bundle holds DECRYPTED copies of files CallVault stored encrypted (bundle.json: "decrypted": true).
For each, "decrypted_files" in bundle.json gives the stored (encrypted) object's name, size and SHA-256
and the decrypted file's size and SHA-256. The signed manifest lists both hashes of every encrypted
object ("sha256" of the ciphertext, "plaintext_sha256" of what decrypting gives), so step 3 above checks
a decrypted file against "plaintext_sha256"; `callvault verify` does that by itself.
Handle these files as the unencrypted personal data they are.
"""


class BundleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    size: int = Field(ge=0)
    sha256: str


class DecryptedFile(BaseModel):
    """One object handed over decrypted: the entry's plaintext and the stored ciphertext it came from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The entry (recording/<name>), the plaintext.")
    ciphertext_name: str = Field(description="The stored object's name in the recording (<name>.age).")
    ciphertext_size: int = Field(ge=0)
    ciphertext_sha256: str
    plaintext_size: int = Field(ge=0)
    plaintext_sha256: str


class BundleIndex(BaseModel):
    """bundle.json."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    recording_id: str
    room_id: str | None = None
    created_at: datetime
    export_job: str | None = None
    key_id: str
    files: list[BundleFile]
    excluded: list[str] = Field(
        default_factory=list, description="Objects of the recording not asked for (names in recording/)."
    )
    decrypted: bool = Field(default=False, description="Encrypted objects are handed over decrypted.")
    decrypted_files: list[DecryptedFile] = Field(default_factory=list)


class BundleResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    name: str = Field(description="The bundle's file name.")
    size: int
    sha256: str
    files: int


Opener = Callable[[], Iterator[bytes]]


def sign(key: Ed25519PrivateKey, data: bytes) -> bytes:
    return base64.b64encode(key.sign(data)) + b"\n"


def write_bundle(
    out: Path,
    *,
    recording_id: str,
    room_id: str | None,
    objects: Iterable[tuple[str, Opener]],
    excluded: list[str],
    audit: list[AuditEntry] | None,
    key: Ed25519PrivateKey,
    export_job: str | None = None,
    now: datetime | None = None,
    decrypted: list[DecryptedFile] | None = None,
    attempt: str | None = None,
) -> BundleResult:
    """(blocking) Write the bundle to `out` (through a temporary file renamed at the end: a crash leaves
    no half bundle under that name; `attempt` names the temporary file of one job attempt, so two workers
    building the same bundle never write into one file). Objects are streamed: memory stays flat whatever
    their size.
    `decrypted`: the objects handed over decrypted (their openers yield plaintext and fail when it is not
    the manifest's), said in the README and the index."""
    tmp = out.with_name(f".{out.name}.{attempt}.tmp" if attempt else f".{out.name}.tmp")
    files: list[BundleFile] = []
    pem = public_key_pem(key)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            readme = README + (DECRYPTED_README if decrypted else "")
            files.append(_write(zf, README_NAME, [readme.encode()]))
            files.append(_write(zf, KEY_NAME, [pem]))
            for name, opener in objects:
                files.append(_write(zf, RECORDING_DIR + name, opener()))
            if audit is not None:
                lines = (e.model_dump_json().encode() + b"\n" for e in audit)
                files.append(_write(zf, AUDIT_NAME, lines))
            index = BundleIndex(
                recording_id=recording_id,
                room_id=room_id,
                created_at=now or datetime.now(UTC),
                export_job=export_job,
                key_id=key_id(key.public_key()),
                files=files,
                excluded=sorted(excluded),
                decrypted=bool(decrypted),
                decrypted_files=sorted(decrypted or [], key=lambda d: d.name),
            )
            data = json.dumps(index.model_dump(mode="json"), indent=1, sort_keys=True).encode() + b"\n"
            zf.writestr(_info(INDEX_NAME), data)
            zf.writestr(_info(INDEX_SIGNATURE), sign(key, data))
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        digest, size = _file_digest(tmp)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BundleResult(recording_id=recording_id, name=out.name, size=size, sha256=digest, files=len(files))


def _info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    return info


def _write(zf: zipfile.ZipFile, name: str, chunks: Iterable[bytes]) -> BundleFile:
    h = hashlib.sha256()
    size = 0
    with zf.open(_info(name), "w", force_zip64=True) as entry:
        for chunk in chunks:
            entry.write(chunk)
            h.update(chunk)
            size += len(chunk)
    return BundleFile(name=name, size=size, sha256=h.hexdigest())


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def canonical(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"
