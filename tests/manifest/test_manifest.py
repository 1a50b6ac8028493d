"""The manifest model, canonical bytes, hash chains, signing keys and the committed JSON Schema."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from recorder.manifest import (
    MANIFEST_FORMAT,
    Manifest,
    SigningSettings,
    canonical_bytes,
    load_signing_key,
    manifest_json_schema,
    public_key_pem,
)
from recorder.manifest.chain import chain_problems
from recorder.manifest.schema import SCHEMA_PATH, schema_text
from recorder.manifest.signing import signature_valid

if TYPE_CHECKING:
    from conftest import Recording


def test_committed_schema_equals_generated() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text()
    schema = manifest_json_schema()
    assert schema["properties"]["format"]["const"] == MANIFEST_FORMAT
    assert "TrackSummary" not in schema["$defs"] and "ManifestTrack" in schema["$defs"]


def test_manifest_lists_every_file_with_its_hash(recording: Recording) -> None:
    m = recording.manifest
    names = [o.name for o in m.objects]
    assert names == sorted(names)
    assert "video-1.segments/000002.webm" in names and "audio-1.json" in names and "video-1.webm" in names
    assert "manifest.json" not in names
    for obj in m.objects:
        data = (recording.folder / obj.name).read_bytes()
        assert obj.sha256 == hashlib.sha256(data).hexdigest() and obj.size == len(data)
        assert obj.key == f"2024/05/01/rec-1/{obj.name}"
    assert m.object("video-1.webm") is not None and m.object("video-1.webm").content_type == "video/webm"  # type: ignore[union-attr]
    assert [t.participant_id for t in m.tracks] == ["agent-1", "agent-1"]
    assert m.software.version and m.format == "callvault.manifest/1"


def test_canonical_bytes_sorted_compact_utf8(recording: Recording) -> None:
    data = (recording.folder / "manifest.json").read_bytes()
    assert data == canonical_bytes(Manifest.model_validate_json(data))
    assert "Zoë".encode() in data  # UTF-8, not \u escapes
    assert b": " not in data and b", " not in data and b"\n" not in data
    top = json.loads(data)
    assert list(top) == sorted(top)


def test_chain_follows_the_documented_formula(recording: Recording) -> None:
    chain = next(c for c in recording.manifest.chains if c.track == "video-1")
    previous = hashlib.sha256(b"callvault.chain/1\nrec-1\nvideo-1").digest()
    assert chain.genesis == previous.hex()
    track = next(t for t in recording.manifest.tracks if t.name == "video-1")
    for link, segment in zip(chain.links, track.segments, strict=True):
        previous = hashlib.sha256(previous + bytes.fromhex(segment.sha256)).digest()
        assert link.link == previous.hex()
    assert chain.head == previous.hex()
    assert chain_problems("rec-1", chain) == []
    swapped = chain.model_copy(update={"links": [chain.links[1], chain.links[0], chain.links[2]]})
    assert chain_problems("rec-1", swapped)


def test_signature_is_base64_over_the_file_bytes(recording: Recording) -> None:
    data = (recording.folder / "manifest.json").read_bytes()
    sig = (recording.folder / "manifest.json.sig").read_bytes()
    assert len(base64.b64decode(sig.strip())) == 64
    public = recording.key.public_key()
    assert signature_valid(data, sig, public)
    assert not signature_valid(data.replace(b"room-7", b"room-8"), sig, public)
    assert recording.manifest.signer is None  # the built manifest; the written one names its signer
    assert Manifest.model_validate_json(data).signer is not None


def test_signing_key_generated_once_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = SigningSettings(
        key_file=tmp_path / "keys" / "signing.pem", key_env="CALLVAULT_TEST_NO_SUCH_ENV"
    )
    caplog.set_level(logging.WARNING)
    key = load_signing_key(settings)
    assert any("generated a new Ed25519 signing key" in r.getMessage() for r in caplog.records)
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    again = load_signing_key(settings)
    assert public_key_pem(again) == public_key_pem(key)
    assert public_key_pem(key).startswith(b"-----BEGIN PUBLIC KEY-----")


def test_signing_key_from_env_seed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seed = bytes(range(32))
    monkeypatch.setenv("CALLVAULT_TEST_SEED", base64.b64encode(seed).decode())
    settings = SigningSettings(
        key_file=tmp_path / "none.pem", key_env="CALLVAULT_TEST_SEED", generate_if_missing=False
    )
    key = load_signing_key(settings)
    assert key.private_bytes_raw() == seed
    assert not settings.key_file.exists()
