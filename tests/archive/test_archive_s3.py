"""A real call recorded into the archive: ffmpeg streams VP8 + Opus as RTP into a RecordingSession, the
Archive uploads to a real S3 server (moto_server) and announces to a real webhook receiver, and the real
`callvault verify` checks what landed in the bucket."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from archive_kit import Receiver, TcpRelay, record_call
from s3_fixture import ACCESS_KEY, LOCKED_BUCKET, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.archive import Archive, ArchiveSettings
from recorder.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest
from recorder.mux.workers import MuxWorkers
from recorder.storage import recording_prefix
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.webhooks import RecordingFinished, RecordingStarted

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PARTICIPANTS = {"alice": ["vp8", "opus"], "bob": ["vp8", "opus"]}


def verify_cli(server: MotoServer, target: str, public_key: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CALLVAULT_S3_ENDPOINT": server.endpoint,
        "CALLVAULT_S3_ACCESS_KEY": ACCESS_KEY,
        "CALLVAULT_S3_SECRET_KEY": SECRET_KEY,
        "CALLVAULT_S3_SECURE": "0",
        "CALLVAULT_S3_REGION": "us-east-1",
    }
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "verify", target, "--public-key", str(public_key)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def prefix_of(recording_id: str, started_at: float) -> str:
    return recording_prefix(
        DEFAULT_KEY_TEMPLATE, recording_id=recording_id, date=datetime.fromtimestamp(started_at, UTC)
    )


def stored_names(server: MotoServer, bucket: str, prefix: str) -> dict[str, str]:
    """name -> sha256 of every object under the prefix, read back from the server."""
    client = server.client()
    found = {}
    for obj in client.list_objects(bucket, prefix=prefix, recursive=True):
        assert obj.object_name is not None
        response = client.get_object(bucket, obj.object_name)
        try:
            found[obj.object_name[len(prefix) :]] = hashlib.sha256(response.read()).hexdigest()
        finally:
            response.close()
            response.release_conn()
    return found


def expected_names(manifest: Manifest, call_tracks: list[str]) -> set[str]:
    names = {o.name for o in manifest.objects}
    for track in call_tracks:
        assert f"{track}.json" in names and f"{track}.webm" in names
        assert any(n.startswith(f"{track}.segments/") for n in names)
    return names | {MANIFEST_NAME, SIGNATURE_NAME}


async def test_call_is_stored_verified_and_announced(
    tmp_path: Path,
    moto_server: MotoServer,
    receiver: Receiver,
    references: dict[str, Path],
    workers: MuxWorkers,
    archive_settings: Callable[..., ArchiveSettings],
) -> None:
    archive = Archive(archive_settings(moto_server.endpoint, PLAIN_BUCKET), tmp_path / "data")
    await archive.start()
    recording_id = f"rec-{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "data" / "recordings" / recording_id
    try:
        assert archive.can_accept_new_recording()
        call, summaries, _ = await record_call(
            folder, recording_id, [archive], PARTICIPANTS, references, workers
        )
        started = time.monotonic()
        await archive.recording_finished(call.info, summaries)
        elapsed = time.monotonic() - started
        # recording_finished returns once recording.finished is in the outbox; its delivery follows.
        await receiver.wait_for(recording_id, "recording.finished", within=20)
    finally:
        await archive.stop()
    assert elapsed < 5
    tracks = [t for names in call.tracks.values() for t in names]
    assert sorted(s.name for s in summaries) == sorted(tracks)
    assert all(s.state == "complete" and len(s.segments) >= 2 for s in summaries)

    # Webhooks: started, then finished, each signed, nothing else.
    events = receiver.of(recording_id)
    assert [e.event.type.value for e in events] == ["recording.started", "recording.finished"]
    for item in events:
        assert receiver.signature_ok(item)
    assert events[0].headers["webhook-id"] == f"msg_{recording_id}.started"
    start = events[0].event.data
    assert isinstance(start, RecordingStarted) and [p.id for p in start.participants] == ["alice", "bob"]
    finished = events[1].event.data
    assert isinstance(finished, RecordingFinished)
    manifest = finished.manifest
    assert manifest.recording_id == recording_id and manifest.room_id == "room-1"
    assert {t.name: t.participant_id for t in manifest.tracks} == {
        "alice-video": "alice",
        "alice-audio": "alice",
        "bob-video": "bob",
        "bob-audio": "bob",
    }
    assert manifest.participants[0].metadata == {"role": "agent"}
    types = {o.name: o.content_type for o in manifest.objects}
    assert types["alice-video.webm"] == "video/webm" and types["alice-audio.webm"] == "audio/webm"
    assert types["bob-audio.segments/000000.webm"] == "audio/webm"
    assert types["bob-video.json"] == "application/json"

    # Storage: exactly what the manifest lists, plus the manifest and its signature, hashes equal.
    prefix = prefix_of(recording_id, call.info.started_at)
    stored = stored_names(moto_server, PLAIN_BUCKET, prefix)
    assert set(stored) == expected_names(manifest, tracks)
    for obj in manifest.objects:
        assert stored[obj.name] == obj.sha256, obj.name
        assert obj.key == prefix + obj.name
    assert not folder.exists()  # delete_local_after_upload: the local copy went once all was stored

    # Presigned links work: fetch the manifest and a track file, compare their hashes.
    links = {link.name: link for link in finished.links}
    assert list(links)[:2] == [MANIFEST_NAME, SIGNATURE_NAME]
    assert set(links) == expected_names(manifest, tracks)
    video = manifest.object("alice-video.webm")
    assert video is not None
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(links[video.name].url, timeout=5).read())
    assert hashlib.sha256(body).hexdigest() == video.sha256
    manifest_bytes = await asyncio.to_thread(
        lambda: urllib.request.urlopen(links[MANIFEST_NAME].url, timeout=5).read()
    )
    assert Manifest.model_validate_json(manifest_bytes) == manifest

    # The real CLI verifies the bucket prefix against the archive's public key...
    public_key = tmp_path / "public.pem"
    public_key.write_bytes((tmp_path / "data" / "signing-key.pem").read_bytes())
    target = f"s3://{PLAIN_BUCKET}/{prefix.rstrip('/')}"
    ok = await asyncio.to_thread(verify_cli, moto_server, target, public_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    # ...and names the object when one byte of it is flipped in the bucket.
    victim = "bob-audio.segments/000001.webm"
    client = moto_server.client()
    data = bytearray(client.get_object(PLAIN_BUCKET, prefix + victim).read())
    data[len(data) // 2] ^= 0x01
    client.put_object(PLAIN_BUCKET, prefix + victim, io.BytesIO(bytes(data)), len(data))
    bad = await asyncio.to_thread(verify_cli, moto_server, target, public_key)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    problems = [line for line in bad.stdout.splitlines() if ": " in line and not line.startswith("FAIL")]
    assert problems == [line for line in problems if line.startswith(f"changed: {victim}: ")]
    assert len(problems) == 1, bad.stdout


async def test_store_outage_mid_call_and_restart(
    tmp_path: Path,
    moto_server: MotoServer,
    relay: TcpRelay,
    receiver: Receiver,
    references: dict[str, Path],
    workers: MuxWorkers,
    archive_settings: Callable[..., ArchiveSettings],
) -> None:
    """The store goes away one second into the call and stays away past the end of the call and a
    restart of the archive; when it returns, everything goes up and recording.finished follows."""
    settings = archive_settings(
        relay.endpoint, LOCKED_BUCKET, delete_local_after_upload=False, finish_timeout=1.0
    )
    data_dir = tmp_path / "data"
    archive = Archive(settings, data_dir)
    await archive.start()
    recording_id = f"rec-{uuid.uuid4().hex[:12]}"
    folder = data_dir / "recordings" / recording_id

    async def cut_store() -> None:
        await asyncio.sleep(1.2)
        await relay.cut()

    try:
        call, summaries, _ = await record_call(
            folder, recording_id, [archive], PARTICIPANTS, references, workers, during=cut_store
        )
        await archive.recording_finished(call.info, summaries)  # returns after finish_timeout
        assert archive.pending_announcements() == [recording_id]
        pending = archive.spool.pending_count(recording_id)
        assert pending > 4  # at least the last segments, track files, summaries, manifest
        assert not archive.uploader.store_available
    finally:
        await archive.stop()
    assert [e.event.type.value for e in receiver.of(recording_id)] == ["recording.started"]

    # A new archive on the same data folder (a restart), the store still down, then back.
    archive = Archive(settings, data_dir)
    await archive.start()
    try:
        assert archive.pending_announcements() == [recording_id]
        await asyncio.sleep(0.5)
        restored = time.monotonic()
        await relay.restore()
        finished_item = await receiver.wait_for(recording_id, "recording.finished", within=20)
        assert archive.spool.pending_count(recording_id) == 0
        async with asyncio.timeout(5):  # the ticket goes right after the event is in the outbox
            while archive.pending_announcements():  # noqa: ASYNC110 - bounded by the timeout
                await asyncio.sleep(0.02)
        assert not list(archive.tickets_dir.glob("*.json"))
        await archive.dispatcher.wait_idle(5)
    finally:
        await archive.stop()
    assert finished_item.at > restored
    events = receiver.of(recording_id)
    assert [e.event.type.value for e in events] == ["recording.started", "recording.finished"]
    assert all(receiver.signature_ok(e) for e in events)
    finished = finished_item.event.data
    assert isinstance(finished, RecordingFinished)
    manifest = finished.manifest

    # Every object present and byte-identical to the local copy (kept), under object lock.
    prefix = prefix_of(recording_id, call.info.started_at)
    stored = stored_names(moto_server, LOCKED_BUCKET, prefix)
    tracks = [t for names in call.tracks.values() for t in names]
    assert set(stored) == expected_names(manifest, tracks)
    for name, digest in stored.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    segments = sum(len(s.segments) for s in summaries)
    assert segments >= 8
    head = moto_server.client().stat_object(LOCKED_BUCKET, prefix + MANIFEST_NAME).metadata
    assert head is not None and head["x-amz-object-lock-mode"] == "COMPLIANCE"
    public_key = data_dir / "signing-key.pem"
    ok = await asyncio.to_thread(verify_cli, moto_server, f"s3://{LOCKED_BUCKET}/{prefix}", public_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
