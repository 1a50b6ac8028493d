"""`callvault verify` run as a real process on local folders and on s3:// prefixes of a real S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.manifest import Manifest, canonical_bytes
from recorder.manifest.signing import public_key_pem, sign
from recorder.storage import S3Settings, S3Store

if TYPE_CHECKING:
    from conftest import Recording

CLI = Path(sys.executable).with_name("callvault")


def callvault(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(CLI)] if CLI.exists() else [sys.executable, "-m", "recorder.cli"]
    return subprocess.run(
        [*command, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def flip_byte(data: bytes, at: int = 100) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def edited_manifest(data: bytes) -> bytes:
    doc = json.loads(data)
    doc["room_id"] = "room-other"
    return canonical_bytes(Manifest.model_validate(doc))


def test_clean_folder_verifies(recording: Recording) -> None:
    result = callvault("verify", str(recording.folder), "--public-key", str(recording.public_key_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK ") and "10 objects" in result.stdout
    assert result.stderr == ""


def test_clean_folder_without_pinned_key_notes_it(recording: Recording) -> None:
    result = callvault("verify", str(recording.folder))
    assert result.returncode == 0
    assert "pass --public-key" in result.stderr


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda f: (f / "video-1.segments/000001.webm").write_bytes(
                flip_byte((f / "video-1.segments/000001.webm").read_bytes())
            ),
            "changed: video-1.segments/000001.webm: sha256 ",
        ),
        (lambda f: (f / "audio-1.webm").unlink(), "missing: audio-1.webm: "),
        (lambda f: (f / "notes.txt").write_text("added later"), "extra: notes.txt: "),
        (
            lambda f: (f / "manifest.json").write_bytes(edited_manifest((f / "manifest.json").read_bytes())),
            "bad-signature: manifest.json: ",
        ),
    ],
    ids=["byte-flipped", "deleted", "extra", "manifest-edited"],
)
def test_each_tampering_is_named(
    recording: Recording, mutate: Callable[[Path], object], expected: str
) -> None:
    mutate(recording.folder)
    result = callvault("verify", str(recording.folder), "--public-key", str(recording.public_key_file))
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert "FAILED" in result.stderr


def test_broken_chain_is_caught_even_when_re_signed(
    recording: Recording, signing_key: Ed25519PrivateKey
) -> None:
    path = recording.folder / "manifest.json"
    doc = json.loads(path.read_bytes())
    links = doc["chains"][0]["links"]
    links[1]["link"] = "0" * 64
    data = canonical_bytes(Manifest.model_validate(doc))
    path.write_bytes(data)
    (recording.folder / "manifest.json.sig").write_bytes(sign(data, signing_key))
    result = callvault("verify", str(recording.folder), "--public-key", str(recording.public_key_file))
    assert result.returncode == 1
    assert any(line.startswith("broken-chain: video-1: segment 1 ") for line in result.stdout.splitlines())


def test_other_signer_is_refused(recording: Recording, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(public_key_pem(Ed25519PrivateKey.generate()))
    result = callvault("verify", str(recording.folder), "--public-key", str(other))
    assert result.returncode == 1
    assert result.stdout.startswith("bad-signature: manifest.json: ") and "another key" in result.stdout


def test_recording_id_resolved_under_root(
    tmp_path: Path, recording_factory: Callable[[Path, str], Recording]
) -> None:
    root = tmp_path / "store"
    rec = recording_factory(root / "2024" / "05" / "01", "rec-by-id")
    result = callvault("verify", "rec-by-id", "--root", str(root), "--public-key", str(rec.public_key_file))
    assert result.returncode == 0, result.stdout + result.stderr
    missing = callvault("verify", "rec-nope", "--root", str(root))
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"callvault verify: error: no recording rec-nope under {root}"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["no/such/folder"],
        ["s3://bucket"],
        ["s3:///prefix"],
        ["rec-1"],
        ["--public-key", "/nonexistent.pem", "."],
    ],
)
def test_bad_usage_is_one_line_exit_2(args: list[str]) -> None:
    env = {"CALLVAULT_STORAGE_ROOT": "", "CALLVAULT_S3_ENDPOINT": ""}
    result = callvault("verify", *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(
        "callvault verify: error: "
    )


# -- s3:// ---------------------------------------------------------------------------------------------


def upload(store: S3Store, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            store.put_file(prefix + path.relative_to(folder).as_posix(), path)


@pytest.fixture
def s3_env(moto_server: MotoServer) -> dict[str, str]:
    return {
        "CALLVAULT_S3_ENDPOINT": moto_server.endpoint,
        "CALLVAULT_S3_ACCESS_KEY": ACCESS_KEY,
        "CALLVAULT_S3_SECRET_KEY": SECRET_KEY,
        "CALLVAULT_S3_SECURE": "0",
        "CALLVAULT_S3_REGION": "us-east-1",
    }


@pytest.fixture
def s3_store(moto_server: MotoServer) -> S3Store:
    return S3Store(
        S3Settings.model_validate(
            {
                "endpoint": moto_server.endpoint,
                "bucket": PLAIN_BUCKET,
                "secure": False,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "http_retries": 0,
            }
        )
    )


def test_s3_clean_and_tampered(
    tmp_path: Path,
    recording_factory: Callable[[Path, str], Recording],
    s3_store: S3Store,
    s3_env: dict[str, str],
) -> None:
    clean = recording_factory(tmp_path, "rec-s3-clean")
    upload(s3_store, clean.folder, "2024/05/01/rec-s3-clean/")
    ok = callvault(
        "verify",
        f"s3://{PLAIN_BUCKET}/2024/05/01/rec-s3-clean",
        "--public-key",
        str(clean.public_key_file),
        env=s3_env,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"OK s3://{PLAIN_BUCKET}/2024/05/01/rec-s3-clean/: 10 objects")

    bad = recording_factory(tmp_path, "rec-s3-bad")
    prefix = "2024/05/01/rec-s3-bad/"
    upload(s3_store, bad.folder, prefix)
    seg = prefix + "video-1.segments/000002.webm"
    s3_store.put_bytes(seg, flip_byte(s3_store.get_bytes(seg)))
    s3_store.delete(prefix + "audio-1.json")
    s3_store.put_bytes(prefix + "audio-1.segments/000003.webm", b"not recorded")
    s3_store.put_bytes(
        prefix + "manifest.json", edited_manifest(s3_store.get_bytes(prefix + "manifest.json"))
    )
    result = callvault(
        "verify", f"s3://{PLAIN_BUCKET}/{prefix}", "--public-key", str(bad.public_key_file), env=s3_env
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    kinds = sorted(line.split(": ", 2)[0] + ": " + line.split(": ", 2)[1] for line in lines)
    assert kinds == [
        "bad-signature: manifest.json",
        "changed: video-1.segments/000002.webm",
        "extra: audio-1.segments/000003.webm",
        "missing: audio-1.json",
    ], lines


def test_s3_unreachable_is_exit_2(tmp_path: Path, s3_env: dict[str, str]) -> None:
    from s3_fixture import free_port

    env = {**s3_env, "CALLVAULT_S3_ENDPOINT": f"127.0.0.1:{free_port()}"}
    result = callvault("verify", "s3://plain/2024/05/01/x", env=env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot read" in result.stderr
