"""service.roles: `callvault serve` as a recorder, an API node or a worker, on one PostgreSQL catalog;
each node starts and does only its part (tests/jobs/jobs_kit.py runs them as subprocesses)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest
from archive_kit import FakeTrack, new_info
from postgres_kit import PostgresServer
from serve_process import request
from service_kit import free_tcp_port

from postprocess.options import Profile
from postprocess.settings import CompositeSettings
from recorder.jobs.queue import defer_composite, ensure_schema, make_app
from recorder.jobs.sink import CompositeQueue
from recorder.models import Codec, MediaKind, TrackSummary

sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit
from jobs_kit import node, stop_all, wait_for

pytestmark = [pytest.mark.timeout(180)]


async def _defer(url: str, rid: str) -> int:
    await ensure_schema(url)
    app = make_app(url)
    async with app.open_async():
        return await defer_composite(app, rid, Profile.HD)


def status(url: str, job_id: int) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()
    return str(row[0]) if row else ""


def answers(port: int) -> bool:
    try:
        return request(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def test_each_role_does_only_its_part(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    job_id = asyncio.run(_defer(url, "rec-missing-1"))  # no such recording: a worker fails it
    janus = f'[janus]\nws_url = "ws://127.0.0.1:{free_tcp_port()}"\nevents_open = true\n'
    off = "[janus]\nenabled = false\n"
    api, api_port = node(tmp_path, "api", url, ["api"], data_dir, janus)
    recorder, rec_port = node(tmp_path, "recorder", url, ["recorder"], data_dir, janus)
    procs = [api, recorder]
    try:
        for port in (api_port, rec_port):
            wait_for(f"node on {port}", lambda p=port: answers(p), 60)  # type: ignore[misc]
        base = f"http://127.0.0.1:{api_port}"

        def pending() -> str | None:
            text = request(f"{base}/metrics")[1]
            return next(
                (ln for ln in text.splitlines() if ln.startswith("callvault_jobs_composites_pending")), None
            )

        # api: metrics with the backlog, no Janus event intake; nobody takes the job
        assert wait_for("backlog 1", lambda: pending() == "callvault_jobs_composites_pending 1.0", 30)
        assert request(f"{base}/janus/events", "POST", b"[]")[0] == 404
        # recorder: the Janus event intake, no API, no metrics; it does not take jobs either
        rec = f"http://127.0.0.1:{rec_port}"
        assert request(f"{rec}/metrics")[0] == 404
        assert request(f"{rec}/v1/recordings")[0] == 404
        assert request(f"{rec}/janus/events", "POST", b"[]")[0] != 404
        assert status(url, job_id) == "todo"
        # worker: no API, no intake; takes the job (it fails: the recording is not in the store); it
        # leaves alone a recording in progress in the shared folder (only a recorder recovers its own)
        live = new_info(data_dir / "recordings" / "rec-live-1", "rec-live-1").folder
        track = FakeTrack(live, "video-0", Codec.VP8)
        track.segment(0)
        before = {p.name: p.read_bytes() for p in live.rglob("*") if p.is_file()}
        worker, worker_port = node(tmp_path, "worker", url, ["worker"], data_dir, off)
        procs.append(worker)
        wait_for("worker", lambda: answers(worker_port), 60)
        assert {p.name: p.read_bytes() for p in live.rglob("*") if p.is_file()} == before
        wait = f"http://127.0.0.1:{worker_port}"
        assert request(f"{wait}/metrics")[0] == 404
        assert request(f"{wait}/janus/events", "POST", b"[]")[0] == 404
        assert wait_for("job failed", lambda: status(url, job_id) == "failed", 60)
        assert wait_for("backlog 0", lambda: pending() == "callvault_jobs_composites_pending 0.0", 30)
    finally:
        stop_all(procs)
        for name in ("api", "recorder", "worker"):  # shown when the test fails
            log = tmp_path / f"{name}.log"
            print(f"== {name}", log.read_text()[-3000:] if log.exists() else "")


def test_a_finished_recording_queues_one_composite_per_profile(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    settings = CompositeSettings(enabled=True, profiles=[Profile.SD, Profile.HD])
    info = new_info(tmp_path / "rec-sink-1", "rec-sink-1")
    audio = TrackSummary(
        name="audio-1",
        kind=MediaKind.AUDIO,
        codec=Codec.OPUS,
        clock_rate=48000,
        payload_type=111,
        container="webm",
        file="audio-1.webm",
    )
    silent = audio.model_copy(update={"file": None})

    async def run() -> None:
        await ensure_schema(url)
        app = make_app(url)
        async with app.open_async():
            sink = CompositeQueue(app, settings)
            await sink.recording_finished(info, [silent])  # no media: nothing to compose
            await sink.recording_finished(info, [audio])
            assert sink.stats()["queued"] == 2

    asyncio.run(run())
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT queue_name, priority, args FROM procrastinate_jobs ORDER BY id"
        ).fetchall()
    assert [(q, p, a) for q, p, a in rows] == [
        ("composites", 30, {"recording_id": "rec-sink-1", "profile": "sd"}),
        ("composites", 30, {"recording_id": "rec-sink-1", "profile": "hd"}),
    ]
