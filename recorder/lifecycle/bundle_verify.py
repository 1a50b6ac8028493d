"""Offline check of an evidence bundle (recorder/lifecycle/bundle.py): no server, no network.

1. bundle.json is signed (bundle.json.sig) by the pinned public key, or by the bundle's own
   public-key.pem when none is pinned (integrity, not origin: the report says so);
2. every file bundle.json lists is there, with its size and SHA-256; nothing else is there;
3. the recording's manifest (recording/manifest.json) checks as `callvault verify FOLDER` checks one:
   signature, chains, every object included (objects the export left out, bundle.json's `excluded`, are
   not counted missing);
   A decrypting export's plaintext files (bundle.json `decrypted_files`) are checked against the signed
   manifest's `plaintext_sha256`/`plaintext_size` of their encrypted object;
4. every audit entry's own hash recomputes (the excerpt has holes, so links between entries are not
   checked: the whole log is checked with `callvault verify --audit`).

Each problem names the file: `changed: recording/1001-video-0.webm: SHA-256 differs from bundle.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from recorder.api.audit import AuditEntry
from recorder.lifecycle.bundle import (
    AUDIT_NAME,
    INDEX_NAME,
    INDEX_SIGNATURE,
    KEY_NAME,
    RECORDING_DIR,
    BundleIndex,
)
from recorder.manifest.model import MANIFEST_NAME, Manifest, StoredObject
from recorder.manifest.signing import SigningKeyError, key_id, load_public_key, signature_valid
from recorder.manifest.verify import ProblemKind, Source, verify_recording

CHUNK = 1024 * 1024


class BundleReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str
    recording_id: str | None = None
    key_id: str | None = None
    key_pinned: bool = False
    files_checked: int = 0
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class _ZipSource(Source):
    """The recording's files inside the bundle, for the manifest verifier. A bundle of a decrypting export
    holds some objects as plaintext: `plain` maps such an object's stored name ('<name>.age') to what the
    signed manifest says of it; it counts as present, intact, when its plaintext entry has the manifest's
    plaintext size and SHA-256 (the ciphertext itself is not in the bundle)."""

    def __init__(self, zf: zipfile.ZipFile, label: str, plain: dict[str, StoredObject] | None = None) -> None:
        self.zf = zf
        self.label = label
        self.plain = plain or {}
        self.entries = {o.name: stored for stored, o in self.plain.items()}

    def names(self) -> set[str]:
        return {
            self.entries.get(name, name)
            for name in (
                n[len(RECORDING_DIR) :]
                for n in self.zf.namelist()
                if n.startswith(RECORDING_DIR) and not n.endswith("/")
            )
        }

    def read(self, name: str) -> bytes | None:
        try:
            return self.zf.read(RECORDING_DIR + name)
        except (KeyError, zipfile.BadZipFile):
            return None

    def digest(self, name: str) -> tuple[int, str] | None:
        obj = self.plain.get(name)
        found = _digest(self.zf, RECORDING_DIR + (obj.name if obj is not None else name))
        if isinstance(found, str):
            return None
        if obj is not None and found == (obj.plaintext_size, obj.plaintext_sha256):
            return obj.size, obj.sha256  # the plaintext the signed manifest names for this ciphertext
        return found


def _digest(zf: zipfile.ZipFile, name: str) -> tuple[int, str] | str:
    """(size, sha256) of an entry, or why it cannot be read (a changed byte fails the entry's CRC)."""
    h = hashlib.sha256()
    size = 0
    try:
        with zf.open(name) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
    except KeyError:
        return "missing"
    except (zipfile.BadZipFile, OSError) as exc:
        return f"unreadable: {exc}"
    return size, h.hexdigest()


def verify_bundle(path: Path, public_key: Ed25519PublicKey | None = None) -> BundleReport:
    report = BundleReport(target=str(path), problems=[], key_pinned=public_key is not None)
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(f"bad-bundle: {path.name}: not a readable ZIP: {exc}")
        return report
    with zf:
        index_bytes = _read(zf, INDEX_NAME, report)
        signature = _read(zf, INDEX_SIGNATURE, report)
        if index_bytes is None:
            return report
        try:
            index = BundleIndex.model_validate(json.loads(index_bytes))
        except (ValueError, ValidationError) as exc:
            report.problems.append(f"bad-bundle: {INDEX_NAME}: not a bundle index: {exc}"[:400])
            return report
        report.recording_id = index.recording_id
        key = public_key
        if key is None:
            pem = _read(zf, KEY_NAME, report)
            if pem is not None:
                try:
                    loaded = serialization.load_pem_public_key(pem)
                except ValueError as exc:
                    report.problems.append(f"bad-bundle: {KEY_NAME}: not a PEM public key: {exc}")
                else:
                    if isinstance(loaded, Ed25519PublicKey):
                        key = loaded
                    else:
                        report.problems.append(f"bad-bundle: {KEY_NAME}: not an Ed25519 key")
        if key is not None:
            report.key_id = key_id(key)
            if signature is None or not signature_valid(index_bytes, signature, key):
                report.problems.append(f"bad-signature: {INDEX_NAME}: the signature does not match the key")
        listed = {f.name: f for f in index.files}
        for name, entry in listed.items():
            found = _digest(zf, name)
            report.files_checked += 1
            if isinstance(found, str):
                report.problems.append(f"{'missing' if found == 'missing' else 'changed'}: {name}: {found}")
            elif found != (entry.size, entry.sha256):
                report.problems.append(f"changed: {name}: size or SHA-256 differs from {INDEX_NAME}")
        for name in zf.namelist():
            if name not in listed and name not in (INDEX_NAME, INDEX_SIGNATURE):
                report.problems.append(f"extra: {name}: not listed in {INDEX_NAME}")
        if RECORDING_DIR + MANIFEST_NAME in listed:
            plain = _decrypted_objects(zf, index) if index.decrypted else None
            _check_manifest(zf, path, key, set(index.excluded), report, plain)
        if AUDIT_NAME in listed:
            _check_audit(zf, report)
    return report


def _read(zf: zipfile.ZipFile, name: str, report: BundleReport) -> bytes | None:
    try:
        return zf.read(name)
    except KeyError:
        report.problems.append(f"missing: {name}: not in the bundle")
    except (zipfile.BadZipFile, OSError) as exc:
        report.problems.append(f"changed: {name}: unreadable: {exc}")
    return None


def _decrypted_objects(zf: zipfile.ZipFile, index: BundleIndex) -> dict[str, StoredObject]:
    """The manifest's encrypted objects that bundle.json says were handed over decrypted (by stored name).
    What they must decrypt to comes from the signed manifest, not from bundle.json."""
    try:
        manifest = Manifest.model_validate_json(zf.read(RECORDING_DIR + MANIFEST_NAME))
    except (KeyError, zipfile.BadZipFile, OSError, ValidationError):
        return {}  # the manifest check reports it
    said = {d.ciphertext_name for d in index.decrypted_files}
    return {
        o.stored_name: o
        for o in manifest.objects
        if o.encryption is not None and o.stored_name in said and o.plaintext_sha256 is not None
    }


def _check_manifest(
    zf: zipfile.ZipFile,
    path: Path,
    key: Ed25519PublicKey | None,
    excluded: set[str],
    report: BundleReport,
    plain: dict[str, StoredObject] | None = None,
) -> None:
    found = verify_recording(_ZipSource(zf, f"{path.name}:{RECORDING_DIR}", plain), key)
    for problem in found.problems:
        if problem.kind is ProblemKind.MISSING and problem.name in excluded:
            continue
        report.problems.append(f"{problem.kind.value}: {RECORDING_DIR}{problem.name}: {problem.detail}")


def _check_audit(zf: zipfile.ZipFile, report: BundleReport) -> None:
    try:
        lines = zf.read(AUDIT_NAME).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError):
        return  # already reported by the file check
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = AuditEntry.model_validate_json(line)
        except ValidationError:
            report.problems.append(f"changed: {AUDIT_NAME}: line {number} is not an audit entry")
            continue
        if entry.computed_hash() != entry.hash:
            report.problems.append(f"changed: {AUDIT_NAME}: entry {entry.seq} does not match its hash")


def run(path: Path, public_key: Ed25519PublicKey | None) -> int:
    """`callvault verify BUNDLE`: one line per problem, then a summary; exit 0 when it holds, 1 if not."""
    report = verify_bundle(path, public_key)
    for line in report.problems:
        print(line)
    pinned = "" if report.key_pinned else " (key from the bundle itself: pass --public-key to check origin)"
    if report.ok:
        print(
            f"OK: bundle {path.name}: recording {report.recording_id}, {report.files_checked} files{pinned}"
        )
        return 0
    print(f"FAILED: bundle {path.name}: {len(report.problems)} problems")
    return 1


def main(argv: list[str] | None = None) -> int:
    """`python -m recorder.lifecycle.bundle_verify BUNDLE [--public-key PEM]` (what `callvault verify
    BUNDLE` runs once recorder/commands/verify.py dispatches bundles to `run`)."""
    parser = argparse.ArgumentParser(prog="python -m recorder.lifecycle.bundle_verify")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--public-key", type=Path, help="PEM Ed25519 public key the sender gave you")
    args = parser.parse_args(argv)
    key = None
    if args.public_key is not None:
        try:
            key = load_public_key(args.public_key)
        except SigningKeyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run(args.bundle, key)


if __name__ == "__main__":
    sys.exit(main())
