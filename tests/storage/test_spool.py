"""The durable upload spool: outage and restart of a real S3 server, process restarts, disk limits."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer

from recorder.storage import JobState, LocalStore, S3Settings, S3Store, Spool, SpoolSettings, Uploader


def fast_spool(folder: Path, **extra: object) -> Spool:
    return Spool(
        SpoolSettings.model_validate(
            {
                "dir": folder,
                "retry_initial": 0.05,
                "retry_max": 0.2,
                "poll_interval": 0.05,
                "min_free_bytes": 0,
                "delete_after_upload": False,
                **extra,
            }
        )
    )


def s3_store(server: MotoServer) -> S3Store:
    return S3Store(
        S3Settings(
            endpoint=server.endpoint,
            bucket=PLAIN_BUCKET,
            secure=False,
            access_key=ACCESS_KEY,  # type: ignore[arg-type]
            secret_key=SECRET_KEY,  # type: ignore[arg-type]
            http_retries=0,
            connect_timeout=1,
            read_timeout=5,
        )
    )


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A moto server this test may kill and restart."""
    server = MotoServer()
    server.start()
    server.create_buckets()
    try:
        yield server
    finally:
        server.stop()


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling an outside condition, bounded by the timeout
            await asyncio.sleep(0.05)


def write_files(folder: Path, count: int, size: int = 50_000) -> dict[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for i in range(count):
        path = folder / f"seg{i:03d}.webm"
        data = os.urandom(size)
        path.write_bytes(data)
        files[path] = hashlib.sha256(data).hexdigest()
    return files


async def test_upload_survives_storage_outage(own_moto: MotoServer, tmp_path: Path) -> None:
    spool = fast_spool(tmp_path / "spool")
    store = s3_store(own_moto)
    uploader = Uploader(spool, store)
    uploader.start()
    try:
        folder = spool.recording_folder("rec-outage")
        first = write_files(folder / "a", 1)
        for path in first:
            spool.enqueue(path, f"rec-outage/a/{path.name}", "video/webm", recording_id="rec-outage")
        assert await uploader.wait_uploaded("rec-outage", within=10)

        own_moto.stop()  # storage goes away mid-recording
        files = write_files(folder / "b", 6)
        for path, digest in files.items():
            spool.enqueue(
                path, f"rec-outage/b/{path.name}", "video/webm", recording_id="rec-outage", sha256=digest
            )
        await wait_for(
            lambda: not uploader.store_available and all(j.attempts for j in spool.jobs(JobState.PENDING))
        )
        assert spool.pending_count("rec-outage") == 6
        assert "unreachable" in (uploader.last_error or "")

        own_moto.start()  # same port; moto starts empty, so recreate the buckets
        own_moto.create_buckets()
        assert await uploader.wait_uploaded("rec-outage", within=15)
    finally:
        await uploader.stop()
    for path, digest in files.items():
        key = f"rec-outage/b/{path.name}"
        assert store.sha256(key) == digest, key
        assert store.stat(key).metadata["sha256"] == digest
    assert [j.state for j in spool.jobs(recording_id="rec-outage")] == [JobState.DONE] * 7
    spool.close()


async def test_pending_jobs_resume_after_restart(moto_server: MotoServer, tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool = fast_spool(folder, delete_after_upload=True)
    files = write_files(spool.recording_folder("rec-restart"), 4)
    for path in files:
        spool.enqueue(path, f"rec-restart/{path.name}", "video/webm", recording_id="rec-restart")
    spool.close()  # the process "dies" before uploading anything

    spool = fast_spool(folder, delete_after_upload=True)
    assert spool.pending_count() == 4
    store = s3_store(moto_server)
    uploader = Uploader(spool, store)
    uploaded: list[str] = []
    uploader.on_uploaded.append(lambda job, result: uploaded.append(job.key))
    uploader.start()
    try:
        assert await uploader.wait_uploaded(within=10)
    finally:
        await uploader.stop()
    assert sorted(uploaded) == sorted(f"rec-restart/{p.name}" for p in files)
    for path, digest in files.items():
        assert store.sha256(f"rec-restart/{path.name}") == digest
        assert not path.exists()  # deleted after upload
    spool.close()


async def test_changed_file_fails_its_job(tmp_path: Path) -> None:
    spool = fast_spool(tmp_path / "spool")
    (path,) = write_files(tmp_path / "src", 1)
    job = spool.enqueue(path, "x/seg.webm", sha256="0" * 64)
    uploader = Uploader(spool, LocalStore(tmp_path / "store"))
    await uploader.run_once()
    failed = spool.get(job)
    assert failed is not None and failed.state is JobState.FAILED and "changed" in (failed.last_error or "")
    assert "1 upload jobs failed" in spool.health().reason


def test_spool_over_limit_refuses_new_recordings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mib = 1024 * 1024
    spool = fast_spool(tmp_path / "spool", max_bytes=4 * mib, high_water=0.5)
    assert spool.can_accept_new_recording()
    assert spool.health().reason == "ok"
    running = spool.recording_folder("rec-running")
    running.mkdir(parents=True)
    (running / "a.webm").write_bytes(b"\0" * (2 * mib + 1))
    caplog.set_level(logging.WARNING, logger="recorder.storage.spool")
    health = spool.health()
    assert not health.accepting and not health.over_limit
    assert "high-water" in health.reason
    assert not spool.can_accept_new_recording()
    # a running recording keeps writing and enqueueing past the mark
    (running / "b.webm").write_bytes(b"\0" * (2 * mib))
    spool.enqueue(running / "b.webm", "rec-running/b.webm")
    assert spool.over_limit
    health = spool.health()
    assert health.over_limit and not health.ok and health.reason.startswith("spool over limit")
    assert any("spool over limit" in r.getMessage() for r in caplog.records)
    (running / "a.webm").unlink()
    (running / "b.webm").unlink()
    assert spool.can_accept_new_recording()
    spool.close()


async def test_a_finishing_recordings_objects_go_up_before_running_calls_segments(tmp_path: Path) -> None:
    """Two calls run; one ends: its last objects (and its earlier segments still waiting) are uploaded
    before the segments the other call queued earlier, in the order the recordings ended."""
    spool = fast_spool(tmp_path / "spool", concurrency=2)
    files = list(write_files(tmp_path / "files", 6, size=1000))
    spool.enqueue(files[0], "running/seg-1", recording_id="running")
    spool.enqueue(files[1], "ended-a/seg-1", recording_id="ended-a")
    spool.enqueue(files[2], "running/seg-2", recording_id="running")
    spool.enqueue(files[3], "ended-b/seg-1", recording_id="ended-b")
    assert spool.prioritize("ended-a", 10) == 1
    spool.enqueue(files[4], "ended-a/track.webm", recording_id="ended-a", priority=10)
    spool.prioritize("ended-b", 9)
    spool.enqueue(files[5], "ended-b/track.webm", recording_id="ended-b", priority=9)
    assert [job.key for job in spool.due_jobs(10)] == [
        "ended-a/seg-1",
        "ended-a/track.webm",
        "ended-b/seg-1",
        "ended-b/track.webm",
        "running/seg-1",
        "running/seg-2",
    ]
    uploaded: list[set[str]] = []
    uploader = Uploader(spool, LocalStore(tmp_path / "store"))
    for _ in range(3):  # two in flight at a time
        batch: set[str] = set()
        uploader.on_uploaded[:] = [lambda job, result, batch=batch: batch.add(job.key)]
        assert await uploader.run_once() == 2
        uploaded.append(batch)
    assert uploaded == [
        {"ended-a/seg-1", "ended-a/track.webm"},
        {"ended-b/seg-1", "ended-b/track.webm"},
        {"running/seg-1", "running/seg-2"},
    ]
    spool.close()


def test_a_spool_written_before_priorities_keeps_its_jobs(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool = fast_spool(folder)
    (file,) = write_files(tmp_path / "files", 1)
    spool.enqueue(file, "old/seg-1", recording_id="old")
    spool.close()
    db = sqlite3.connect(folder / "spool.sqlite3")
    db.execute("ALTER TABLE jobs DROP COLUMN priority")  # the jobs table as it was before priorities
    db.commit()
    db.close()
    spool = fast_spool(folder)
    (job,) = spool.due_jobs(10)
    assert job.key == "old/seg-1" and job.priority == 0
    spool.close()
