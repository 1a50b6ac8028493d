"""Signed manifest revisions: objects added after the seal, the archived revisions, and their verification."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recorder.manifest import (
    FolderSource,
    Manifest,
    ManifestError,
    RemovedObject,
    StoredObject,
    StoreSource,
    VerifyReport,
    content_type_for,
    revise_manifest,
    revision_names,
    verify_recording,
    write_signed_manifest,
)
from recorder.manifest.canonical import canonical_json
from recorder.manifest.signing import sign, signature_valid
from recorder.storage.local import LocalStore

if TYPE_CHECKING:
    from conftest import Recording

COMPOSITE = "composite.mp4"


def key_for(recording_id: str) -> Callable[[str], str]:
    return lambda name: f"2024/05/01/{recording_id}/{name}"


def add_file(rec: Recording, name: str, content: bytes) -> StoredObject:
    path = rec.folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return StoredObject(
        name=name,
        key=key_for(rec.recording_id)(name),
        size=len(content),
        content_type=content_type_for(name),
        sha256=hashlib.sha256(content).hexdigest(),
    )


def revise(rec: Recording, added: Sequence[StoredObject], key: Ed25519PrivateKey | None = None) -> Manifest:
    """The folder's next revision: archive the current one, sign the revision with `key`, write it."""
    data = (rec.folder / "manifest.json").read_bytes()
    signature = (rec.folder / "manifest.json.sig").read_bytes()
    revised, archived = revise_manifest(
        Manifest.model_validate_json(data), data, signature, added, key_for(rec.recording_id)
    )
    for name, content in archived.items():
        (rec.folder / name).write_bytes(content)
    write_signed_manifest(rec.folder, revised, key or rec.key)
    return revised


def check(folder: Path, key: Ed25519PublicKey | None) -> VerifyReport:
    return verify_recording(FolderSource(folder), key)


def pairs(report: VerifyReport) -> set[tuple[str, str]]:
    return {(p.kind.value, p.name) for p in report.problems}


def composite(rec: Recording) -> StoredObject:
    return add_file(rec, COMPOSITE, b"\x00\x00\x00\x18ftypisom" + os.urandom(3000))


def test_revision_names() -> None:
    assert revision_names(1) == ("manifest.1.json", "manifest.1.json.sig")
    assert revision_names(12) == ("manifest.12.json", "manifest.12.json.sig")
    with pytest.raises(ValueError):
        revision_names(0)


def test_revision_adds_an_object_and_keeps_the_sealed_evidence(recording: Recording) -> None:
    sealed = (recording.folder / "manifest.json").read_bytes()
    sealed_signature = (recording.folder / "manifest.json.sig").read_bytes()
    first = Manifest.model_validate_json(sealed)
    assert first.revision == 1 and first.previous is None
    added = composite(recording)

    revise(recording, [added])

    data = (recording.folder / "manifest.json").read_bytes()
    second = Manifest.model_validate_json(data)
    assert second.revision == 2 and second.previous is not None
    assert second.previous.model_dump() == {
        "revision": 1,
        "name": "manifest.1.json",
        "signature": "manifest.1.json.sig",
        "sha256": hashlib.sha256(sealed).hexdigest(),
    }
    # The seal is kept byte for byte, and still verifies on its own.
    assert (recording.folder / "manifest.1.json").read_bytes() == sealed
    assert (recording.folder / "manifest.1.json.sig").read_bytes() == sealed_signature
    assert signature_valid(sealed, sealed_signature, recording.key.public_key())
    # Everything else is unchanged; the objects are the sealed ones, the archived revision and the composite.
    unchanged = {"objects", "revision", "previous"}
    assert second.model_dump(exclude=unchanged) == first.model_dump(exclude=unchanged)
    names = [o.name for o in second.objects]
    assert names == sorted(names)
    assert set(names) == {o.name for o in first.objects} | {
        "manifest.1.json",
        "manifest.1.json.sig",
        COMPOSITE,
    }
    assert second.object(COMPOSITE) == added
    archived = second.object("manifest.1.json")
    assert archived is not None and archived.content_type == "application/json"
    assert archived.key == "2024/05/01/rec-1/manifest.1.json" and archived.size == len(sealed)

    report = check(recording.folder, recording.key.public_key())
    assert report.ok, report.problems
    assert report.revision == 2 and report.key_pinned and report.objects_checked == len(first.objects) + 3
    unpinned = check(recording.folder, None)
    assert unpinned.ok and not unpinned.key_pinned


def test_flipped_archived_revision_is_changed_and_bad_revision(recording: Recording) -> None:
    revise(recording, [composite(recording)])
    path = recording.folder / "manifest.1.json"
    data = path.read_bytes()
    path.write_bytes(data[:50] + bytes([data[50] ^ 0x01]) + data[51:])

    report = check(recording.folder, recording.key.public_key())
    assert pairs(report) == {("changed", "manifest.1.json"), ("bad-revision", "manifest.1.json")}
    lines = [p.line() for p in report.problems]
    assert any(line.startswith("bad-revision: manifest.1.json: sha256 ") for line in lines), lines


@pytest.mark.parametrize("name", ["manifest.1.json", "manifest.1.json.sig"])
def test_deleted_archived_revision_is_missing_and_bad_revision(recording: Recording, name: str) -> None:
    revise(recording, [composite(recording)])
    (recording.folder / name).unlink()

    report = check(recording.folder, recording.key.public_key())
    assert pairs(report) == {("missing", name), ("bad-revision", name)}
    if name == "manifest.1.json":
        assert "cannot be checked" in next(p.detail for p in report.problems if p.kind == "bad-revision")


def test_revision_dropping_a_sealed_object_is_named(recording: Recording) -> None:
    revised = revise(recording, [composite(recording)])
    dropped = revised.model_copy(update={"objects": [o for o in revised.objects if o.name != "audio-1.json"]})
    write_signed_manifest(recording.folder, dropped, recording.key)

    report = check(recording.folder, recording.key.public_key())
    assert pairs(report) == {("bad-revision", "audio-1.json"), ("extra", "audio-1.json")}
    problem = next(p for p in report.problems if p.kind == "bad-revision")
    assert problem.line() == (
        "bad-revision: audio-1.json: listed in revision 1 (manifest.1.json), dropped by revision 2"
    )


def test_revision_changing_a_sealed_object_or_track_is_named(recording: Recording) -> None:
    revised = revise(recording, [composite(recording)])
    objects = [
        o.model_copy(update={"sha256": "0" * 64}) if o.name == "audio-1.json" else o for o in revised.objects
    ]
    tracks = [t.model_copy(update={"frames": t.frames + 1}) for t in revised.tracks]
    edited = revised.model_copy(update={"objects": objects, "tracks": tracks})
    write_signed_manifest(recording.folder, edited, recording.key)

    report = check(recording.folder, recording.key.public_key())
    assert ("bad-revision", "audio-1.json") in pairs(report)
    assert ("changed", "audio-1.json") in pairs(report)
    details = [p.detail for p in report.problems if p.name == "manifest.1.json"]
    assert sorted(details) == ["track audio-1 differs in revision 2", "track video-1 differs in revision 2"]


def test_previous_signed_by_another_key_is_bad_revision(recording: Recording) -> None:
    other = Ed25519PrivateKey.generate()
    revise(recording, [composite(recording)], key=other)

    for key in (other.public_key(), None):
        report = check(recording.folder, key)
        assert pairs(report) == {("bad-revision", "manifest.1.json.sig")}, report.problems
        assert "revision 1 names key" in report.problems[0].detail
    # Pinned to the sealing key, revision 1 holds and revision 2 is the one refused.
    sealing = check(recording.folder, recording.key.public_key())
    assert pairs(sealing) == {("bad-signature", "manifest.json")}


def test_inconsistent_revision_numbers(recording: Recording) -> None:
    first = Manifest.model_validate_json((recording.folder / "manifest.json").read_bytes())
    write_signed_manifest(recording.folder, first.model_copy(update={"revision": 2}), recording.key)
    report = check(recording.folder, recording.key.public_key())
    assert [p.line() for p in report.problems] == [
        "bad-revision: manifest.json: revision 2 names no previous revision"
    ]


def test_revise_twice_chains_through_every_revision(recording: Recording) -> None:
    revise(recording, [composite(recording)])
    third = revise(recording, [add_file(recording, "composite-audio.m4a", os.urandom(500))])

    assert third.revision == 3 and third.previous is not None and third.previous.name == "manifest.2.json"
    second = Manifest.model_validate_json((recording.folder / "manifest.2.json").read_bytes())
    assert second.revision == 2 and second.previous is not None and second.previous.name == "manifest.1.json"
    for name in ("manifest.1.json", "manifest.1.json.sig", "manifest.2.json", "manifest.2.json.sig"):
        assert third.object(name) is not None
    report = check(recording.folder, recording.key.public_key())
    assert report.ok and report.revision == 3, report.problems

    # Revision 1, two revisions down, is still checked.
    path = recording.folder / "manifest.1.json"
    path.write_bytes(path.read_bytes().replace(b"room-7", b"room-8"))
    assert pairs(check(recording.folder, recording.key.public_key())) == {
        ("changed", "manifest.1.json"),
        ("bad-revision", "manifest.1.json"),
    }


def test_a_bad_revision_deep_in_the_chain_is_found(recording: Recording) -> None:
    revised = revise(recording, [composite(recording)])
    dropped = revised.model_copy(update={"objects": [o for o in revised.objects if o.name != "audio-1.json"]})
    write_signed_manifest(recording.folder, dropped, recording.key)
    revise(recording, [add_file(recording, "notes/summary.txt", b"added in revision 3")])

    report = check(recording.folder, recording.key.public_key())
    problems = [p.line() for p in report.problems if p.kind == "bad-revision"]
    assert problems == [
        "bad-revision: audio-1.json: listed in revision 1 (manifest.1.json), dropped by revision 2"
    ]


def test_re_adding_identical_objects_is_idempotent(recording: Recording) -> None:
    added = composite(recording)
    second = revise(recording, [added, added])
    assert [o.name for o in second.objects].count(COMPOSITE) == 1

    sealed = recording.manifest.object("video-1.webm")
    assert sealed is not None
    same = sealed.model_copy(update={"key": "elsewhere/video-1.webm", "content_type": "video/other"})
    third = revise(recording, [added.model_copy(update={"key": "other/key"}), same])
    assert third.revision == 3
    assert third.object(COMPOSITE) == added and third.object("video-1.webm") == sealed
    assert {o.name for o in third.objects} == {o.name for o in second.objects} | {
        "manifest.2.json",
        "manifest.2.json.sig",
    }
    assert check(recording.folder, recording.key.public_key()).ok


@pytest.mark.parametrize(
    "name", ["manifest.json", "manifest.json.sig", "manifest.1.json", "manifest.7.json.sig"]
)
def test_reserved_names_are_refused(recording: Recording, name: str) -> None:
    obj = StoredObject(name=name, key=name, size=1, content_type="application/json", sha256="a" * 64)
    data = (recording.folder / "manifest.json").read_bytes()
    signature = (recording.folder / "manifest.json.sig").read_bytes()
    with pytest.raises(ManifestError, match="reserved"):
        revise_manifest(Manifest.model_validate_json(data), data, signature, [obj], key_for("rec-1"))


def test_other_content_under_a_listed_name_is_refused(recording: Recording) -> None:
    data = (recording.folder / "manifest.json").read_bytes()
    signature = (recording.folder / "manifest.json.sig").read_bytes()
    current = Manifest.model_validate_json(data)
    listed = current.object("video-1.webm")
    assert listed is not None
    changed = listed.model_copy(update={"sha256": "b" * 64})
    with pytest.raises(ManifestError, match=r"video-1\.webm: already listed"):
        revise_manifest(current, data, signature, [changed], key_for("rec-1"))
    first = composite(recording)
    with pytest.raises(ManifestError, match=r"composite\.mp4: already listed"):
        revise_manifest(
            current, data, signature, [first, first.model_copy(update={"size": 1})], key_for("rec-1")
        )


def test_revise_refuses_bytes_that_are_not_the_signed_manifest(recording: Recording) -> None:
    data = (recording.folder / "manifest.json").read_bytes()
    signature = (recording.folder / "manifest.json.sig").read_bytes()
    current = Manifest.model_validate_json(data)
    other = current.model_copy(update={"room_id": "room-8"})
    with pytest.raises(ManifestError, match="not the manifest being revised"):
        revise_manifest(other, data, signature, [], key_for("rec-1"))
    with pytest.raises(ManifestError, match="not a valid signature"):
        revise_manifest(current, data, sign(data + b" ", recording.key), [], key_for("rec-1"))
    doc = json.loads(data)
    del doc["signer"]
    plain = canonical_json(doc)
    with pytest.raises(ManifestError, match="not signed"):
        revise_manifest(Manifest.model_validate_json(plain), plain, signature, [], key_for("rec-1"))


def test_manifest_written_before_revisions_still_verifies_and_revises(recording: Recording) -> None:
    doc = json.loads((recording.folder / "manifest.json").read_bytes())
    del doc["revision"], doc["previous"]
    legacy = canonical_json(doc)
    assert b'"revision"' not in legacy and b'"previous"' not in legacy
    (recording.folder / "manifest.json").write_bytes(legacy)
    (recording.folder / "manifest.json.sig").write_bytes(sign(legacy, recording.key))

    report = check(recording.folder, recording.key.public_key())
    assert report.ok and report.revision == 1, report.problems

    second = revise(recording, [composite(recording)])
    assert (recording.folder / "manifest.1.json").read_bytes() == legacy
    assert second.previous is not None and second.previous.sha256 == hashlib.sha256(legacy).hexdigest()
    assert check(recording.folder, recording.key.public_key()).ok


def test_revised_recording_in_a_store(recording: Recording, tmp_path: Path) -> None:
    revise(recording, [composite(recording)])
    store = LocalStore(tmp_path / "store")
    prefix = "2024/05/01/rec-1/"
    for path in sorted(recording.folder.rglob("*")):
        if path.is_file():
            store.put_file(prefix + path.relative_to(recording.folder).as_posix(), path)

    source = StoreSource(store, prefix)
    report = verify_recording(source, recording.key.public_key())
    assert report.ok and report.revision == 2, report.problems

    store.put_bytes(prefix + "manifest.1.json.sig", sign(b"something else", recording.key))
    report = verify_recording(source, recording.key.public_key())
    assert pairs(report) == {("changed", "manifest.1.json.sig"), ("bad-revision", "manifest.1.json.sig")}


def test_a_revision_may_remove_objects_it_lists_as_removed(recording: Recording) -> None:
    """An object removed on purpose (the unredacted original after a redaction, recorder/transcripts/
    originals.py) is listed under `removed` with its content and why: the recording verifies without it;
    a later revision that drops the removal record, or a removal of other content, does not."""
    rec, key = recording, recording.key
    added = composite(rec)
    revise(rec, [added])
    data = (rec.folder / "manifest.json").read_bytes()
    signature = (rec.folder / "manifest.json.sig").read_bytes()
    current = Manifest.model_validate_json(data)
    assert b"removed" not in data  # left out while empty: manifests without removals are unchanged
    gone = RemovedObject(
        name=COMPOSITE, sha256=added.sha256, size=added.size, revision=3, removed_at=datetime.now(UTC),
        reason="unredacted; replaced by the redacted copy redacted-1/",
    )  # fmt: skip
    other = gone.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ManifestError, match="cannot remove it"):
        revise_manifest(current, data, signature, [], key_for(rec.recording_id), [other])
    revised, archived = revise_manifest(current, data, signature, [], key_for(rec.recording_id), [gone])
    for name, content in archived.items():
        (rec.folder / name).write_bytes(content)
    write_signed_manifest(rec.folder, revised, key)
    (rec.folder / COMPOSITE).unlink()
    report = check(rec.folder, key.public_key())
    assert report.ok, report.problems
    assert revised.object(COMPOSITE) is None and [r.name for r in revised.removed] == [COMPOSITE]

    forged = revise(rec, [])  # revision 4 keeps the record; one that drops it is named
    write_signed_manifest(rec.folder, forged.model_copy(update={"removed": []}), key)
    assert ("bad-revision", COMPOSITE) in pairs(check(rec.folder, key.public_key()))
