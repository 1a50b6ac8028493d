"""Encryption at rest (archive.encryption): what the archive stores for an encrypted recording, checked with
the real `age` tool and `callvault verify`, in the local store and in a real S3 server (moto)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from age_kit import age_decrypt, keygen
from archive_kit import Receiver, TcpRelay, local_settings, new_info, record_call, run_recording
from s3_fixture import ACCESS_KEY, LOCKED_BUCKET, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.archive import Archive, ArchiveSettings
from recorder.crypto.age import read_identities
from recorder.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, StoreSource, verify_recording
from recorder.manifest.signing import load_public_key
from recorder.mux.workers import MuxWorkers
from recorder.storage import LocalStore, ObjectStore, recording_prefix
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.webhooks import RecordingFinished

pytestmark = pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is installed by make")
ROOT = Path(__file__).resolve().parents[2]


async def record(archive: Archive, folder: Path, rid: str) -> tuple[str, dict[str, str], Path, bytes]:
    """Run a recording through the archive; (its key prefix, the sha256 of every segment as it was
    written, the spool's sealed folder, the signing public key)."""
    info = new_info(folder, rid)
    await archive.start()
    try:
        summaries = await run_recording(archive, info)
        assert await archive.dispatcher.wait_idle(10)
        jobs = archive.spool.jobs(recording_id=rid)
        sealed = archive.sealing.folder(rid)
        pem = archive.public_key_pem()
    finally:
        await archive.stop()
    # the upload queue held ciphertext (and the readable manifest copies) only, never the recording folder
    assert jobs and all(Path(j.local_path).is_relative_to(sealed) for j in jobs)
    assert not await asyncio.to_thread(folder.exists), "the plaintext working copy is gone"
    assert not await asyncio.to_thread(lambda: list(sealed.rglob("*.age"))), "stored ciphertext is deleted"
    written = {s.path: s.sha256 for t in summaries for s in t.segments}
    prefix = recording_prefix(
        DEFAULT_KEY_TEMPLATE, recording_id=rid, date=datetime.fromtimestamp(info.started_at, UTC)
    )
    return prefix, written, sealed, pem


def check_store(store: ObjectStore, prefix: str, keys: list[Path], written: dict[str, str]) -> Manifest:
    """Every object but the manifest and its signature is age ciphertext that `age -d` with each key turns
    into the recorded bytes; returns the manifest."""
    manifest = Manifest.model_validate_json(store.get_bytes(prefix + MANIFEST_NAME))
    names = {info.key[len(prefix) :] for info in store.list(prefix)}
    assert names == {o.stored_name for o in manifest.objects} | {MANIFEST_NAME, SIGNATURE_NAME}
    assert {o.name for o in manifest.objects} >= set(written)
    for obj in manifest.objects:
        assert obj.encryption == "age" and obj.key.endswith(".age") and obj.stored_name.endswith(".age")
        cipher = store.get_bytes(prefix + obj.stored_name)
        assert cipher.startswith(b"age-encryption.org/v1\n")
        assert hashlib.sha256(cipher).hexdigest() == obj.sha256 and len(cipher) == obj.size
        for identity in keys:
            clear = age_decrypt(identity, cipher)
            assert hashlib.sha256(clear).hexdigest() == obj.plaintext_sha256
            assert len(clear) == obj.plaintext_size
        if obj.name in written:  # segments: the hash taken when the segment closed, before encryption
            assert obj.plaintext_sha256 == written[obj.name]
    # participants: ids in the clear, display names only sealed
    assert [p.model_dump(exclude_defaults=True) for p in manifest.participants] == [{"id": "agent-7"}]
    assert manifest.encryption is not None
    sealed = base64.b64decode(manifest.encryption.participants)
    assert b"Agent" not in store.get_bytes(prefix + MANIFEST_NAME)
    assert json.loads(age_decrypt(keys[0], sealed))[0]["display_name"] == "Agent"
    return manifest


async def test_local_store_objects_are_age_ciphertext_for_customer_and_escrow(
    tmp_path: Path, receiver: Receiver
) -> None:
    customer, escrow = keygen(tmp_path / "customer.txt"), keygen(tmp_path / "escrow.txt")
    settings = local_settings(receiver, encryption={"recipients": [customer], "escrow": [escrow]})
    archive = Archive(settings, tmp_path)
    prefix, written, _, pem = await record(archive, tmp_path / "recordings" / "rec-enc-1", "rec-enc-1")
    store = LocalStore(tmp_path / "recordings-store")
    manifest = check_store(store, prefix, [tmp_path / "customer.txt", tmp_path / "escrow.txt"], written)
    assert manifest.encryption is not None and manifest.encryption.recipients == [customer, escrow]
    finished = receiver.of("rec-enc-1")[-1].event.data
    assert isinstance(finished, RecordingFinished) and finished.manifest.encryption is not None

    (tmp_path / "pub.pem").write_bytes(pem)
    source = StoreSource(store, prefix)
    keyless = verify_recording(source, load_public_key(tmp_path / "pub.pem"))
    assert keyless.ok and keyless.objects_checked == len(manifest.objects) and keyless.plaintext_checked == 0
    full = verify_recording(source, None, identities=read_identities(tmp_path / "escrow.txt"))
    assert full.ok and full.plaintext_checked == len(manifest.objects), full.problems

    # one flipped byte in a stored segment: keyless verify says changed; with the key, bad-plaintext
    seg = next(o for o in manifest.objects if o.name in written)
    path = tmp_path / "recordings-store" / (prefix + seg.stored_name)
    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    kinds = {(p.kind.value, p.name) for p in verify_recording(source).problems}
    assert ("changed", seg.name) in kinds
    wrong = tmp_path / "wrong.txt"
    keygen(wrong)
    problems = verify_recording(source, identities=read_identities(tmp_path / "customer.txt")).problems
    assert ("bad-plaintext", seg.name) in {(p.kind.value, p.name) for p in problems}
    problems = verify_recording(source, identities=read_identities(wrong)).problems
    assert {p.kind.value for p in problems} >= {"bad-plaintext"}
    assert any("wrong key" in p.detail for p in problems)


async def test_s3_objects_are_ciphertext_and_the_cli_verifies_them_with_and_without_the_key(
    tmp_path: Path, receiver: Receiver, moto_server: MotoServer, archive_settings: Any
) -> None:
    customer = keygen(tmp_path / "customer.txt")
    settings: ArchiveSettings = archive_settings(
        moto_server.endpoint, PLAIN_BUCKET, encryption={"recipients": [customer]}
    )
    archive = Archive(settings, tmp_path)
    prefix, written, _, pem = await record(archive, tmp_path / "recordings" / "rec-enc-s3", "rec-enc-s3")
    check_store(archive.store, prefix, [tmp_path / "customer.txt"], written)
    (tmp_path / "pub.pem").write_bytes(pem)
    env = {
        "PATH": "/usr/bin:/bin",
        "CALLVAULT_S3_ENDPOINT": moto_server.endpoint,
        "CALLVAULT_S3_ACCESS_KEY": ACCESS_KEY,
        "CALLVAULT_S3_SECRET_KEY": SECRET_KEY,
        "CALLVAULT_S3_SECURE": "0",
    }
    target = f"s3://{PLAIN_BUCKET}/{prefix}"
    base = [sys.executable, "-m", "recorder.cli", "verify", target, "--public-key", str(tmp_path / "pub.pem")]
    for extra in ([], ["--identity", str(tmp_path / "customer.txt")]):
        done = await asyncio.to_thread(
            subprocess.run,
            base + extra,
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("OK ")
    assert "plaintext" in done.stdout


def cli(*args: str, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp)} if tmp is not None else None
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def test_decrypt_restores_the_originals_bit_for_bit_and_refuses_bad_input(
    tmp_path: Path, receiver: Receiver
) -> None:
    customer = keygen(tmp_path / "customer.txt")
    keygen(tmp_path / "wrong.txt")
    settings = local_settings(receiver, encryption={"recipients": [customer]})
    archive = Archive(settings, tmp_path)
    prefix, written, _, _ = await record(archive, tmp_path / "recordings" / "rec-dec-1", "rec-dec-1")
    stored = tmp_path / "recordings-store" / prefix
    manifest = Manifest.model_validate_json((stored / MANIFEST_NAME).read_bytes())

    out = tmp_path / "restored"
    done = await asyncio.to_thread(
        cli, "decrypt", str(stored), "--identity", str(tmp_path / "customer.txt"), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK rec-dec-1: {len(manifest.objects)} decrypted")
    for obj in manifest.objects:
        data = (out / obj.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == obj.plaintext_sha256
    for name, sha in written.items():  # segments: as the recorder wrote them
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha
    assert (out / MANIFEST_NAME).read_bytes() == (stored / MANIFEST_NAME).read_bytes()

    # by recording id under the storage root, into a second folder
    again = await asyncio.to_thread(
        cli,
        "decrypt",
        "rec-dec-1",
        "--root",
        str(tmp_path / "recordings-store"),
        "--identity",
        str(tmp_path / "customer.txt"),
        "--out",
        str(tmp_path / "second"),
    )
    assert again.returncode == 0, again.stderr

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    bad = {
        "overwrite": (str(tmp_path / "customer.txt"), out, "would overwrite"),
        "wrong key": (str(tmp_path / "wrong.txt"), tmp_path / "w", "wrong key"),
        "no file": (str(tmp_path / "nope.txt"), tmp_path / "n", "cannot read it"),
        "not a key": (str(stored / MANIFEST_NAME), tmp_path / "k", "not an age identity"),
    }
    for why, (identity, target, message) in bad.items():
        done = await asyncio.to_thread(
            cli, "decrypt", str(stored), "--identity", identity, "--out", str(target)
        )
        assert done.returncode == 2, (why, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr, (why, done.stderr)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing overwritten
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").rglob("*.webm"))


async def test_real_call_encrypted_then_composited_from_the_ciphertext_with_the_key(
    tmp_path: Path, receiver: Receiver, references: dict[str, Path], workers: MuxWorkers
) -> None:
    """ffmpeg streams VP8+Opus for two participants; the stored recording is ciphertext only; `callvault
    composite --identity` builds a playable composite from it; `callvault decrypt` gives back track files
    whose frames ffprobe reads."""
    customer = keygen(tmp_path / "customer.txt")
    archive = Archive(local_settings(receiver, encryption={"recipients": [customer]}), tmp_path)
    await archive.start()
    folder = tmp_path / "recordings" / "rec-enc-call"
    try:
        call, summaries, _ = await record_call(
            folder, "rec-enc-call", [archive], {"alice": ["vp8", "opus"], "bob": ["vp8"]}, references, workers
        )
        await archive.recording_finished(call.info, summaries)
        assert await archive.dispatcher.wait_idle(10)
    finally:
        await archive.stop()
    assert not await asyncio.to_thread(folder.exists)
    prefix = recording_prefix(
        DEFAULT_KEY_TEMPLATE,
        recording_id="rec-enc-call",
        date=datetime.fromtimestamp(call.info.started_at, UTC),
    )
    stored = tmp_path / "recordings-store" / prefix
    assert {p.suffix for p in stored.rglob("*") if p.is_file()} == {".age", ".json", ".sig"}
    assert not [p for p in stored.rglob("*.json") if p.name != MANIFEST_NAME]

    no_key = await asyncio.to_thread(cli, "composite", str(stored), "--no-progress")
    assert no_key.returncode == 2 and "pass --identity" in no_key.stderr
    out = tmp_path / "composite.mp4"
    private = tmp_path / "tmp"
    private.mkdir()
    done = await asyncio.to_thread(
        partial(cli, tmp=private),
        "composite",
        str(stored),
        "--identity",
        str(tmp_path / "customer.txt"),
        "--profile",
        "sd",
        "--out",
        str(out),
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    probe = await asyncio.to_thread(
        subprocess.run,
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(probe.stdout.split()) == ["audio", "video"]
    assert not await asyncio.to_thread(os.listdir, private), "the temporary plaintext is deleted"


async def test_store_down_past_the_call_and_a_restart_plaintext_gone_at_once_ciphertext_waits(
    tmp_path: Path,
    moto_server: MotoServer,
    relay: TcpRelay,
    receiver: Receiver,
    references: dict[str, Path],
    workers: MuxWorkers,
    archive_settings: Any,
) -> None:
    """The store goes away during an encrypted call and stays away past its end and a restart: the
    plaintext folder is deleted as soon as the recording is sealed (the spool holds the ciphertext); when
    the store returns after the restart, everything goes up and verifies with the key."""
    customer = keygen(tmp_path / "customer.txt")
    settings: ArchiveSettings = archive_settings(
        relay.endpoint, LOCKED_BUCKET, finish_timeout=1.0, encryption={"recipients": [customer]}
    )
    data_dir = tmp_path / "data"
    rid = "rec-enc-outage"
    folder = data_dir / "recordings" / rid
    archive = Archive(settings, data_dir)
    await archive.start()

    async def cut_store() -> None:
        await asyncio.sleep(1.2)
        await relay.cut()

    try:
        call, summaries, _ = await record_call(
            folder, rid, [archive], {"alice": ["vp8", "opus"]}, references, workers, during=cut_store
        )
        await archive.recording_finished(call.info, summaries)  # returns after finish_timeout
        assert archive.pending_announcements() == [rid]
        assert not await asyncio.to_thread(folder.exists), "plaintext deleted while the store is down"
        sealed = archive.sealing.folder(rid)
        waiting = await asyncio.to_thread(lambda: sorted(p.name for p in sealed.rglob("*") if p.is_file()))
        assert waiting and all(n.endswith(".age") or n.startswith("manifest.json") for n in waiting)
    finally:
        await archive.stop()

    archive = Archive(settings, data_dir)  # a restart, the store still down, then back
    await archive.start()
    try:
        assert archive.pending_announcements() == [rid]
        await relay.restore()
        finished_item = await receiver.wait_for(rid, "recording.finished", within=30)
        keys = archive.sealing.keys_dir / f"{rid}.json"
        for _ in range(100):  # the key choice is forgotten right after the announcement
            if not await asyncio.to_thread(keys.exists):
                break
            await asyncio.sleep(0.05)
        await archive.dispatcher.wait_idle(5)
    finally:
        await archive.stop()
    finished = finished_item.event.data
    assert isinstance(finished, RecordingFinished) and finished.manifest.encryption is not None
    prefix = recording_prefix(
        DEFAULT_KEY_TEMPLATE, recording_id=rid, date=datetime.fromtimestamp(call.info.started_at, UTC)
    )
    store = archive.store
    report = await asyncio.to_thread(
        verify_recording, StoreSource(store, prefix), None, None, read_identities(tmp_path / "customer.txt")
    )
    assert report.ok and report.plaintext_checked == len(finished.manifest.objects), report.problems
    assert not await asyncio.to_thread(lambda: list(archive.sealing.keys_dir.glob("*.json")))
