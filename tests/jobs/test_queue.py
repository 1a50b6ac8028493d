"""The distributed job queue on a real PostgreSQL (recorder/jobs): composites built by worker nodes that
are separate `callvault serve` processes (service.roles = ["worker"]) from a shared data folder.

- two workers, one composite job: the worker that takes it is SIGKILLed mid-build; the other worker puts
  the stalled job back (its heartbeat stopped) and builds the whole composite;
- a recorder-only node queues nothing itself but the queue's backlog, read by an API node, is a metric.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import av
import psycopg
import pytest
from postgres_kit import PostgresServer

from postprocess.options import Profile
from recorder.jobs.queue import (
    COMPOSITE_TASK,
    PRIORITIES,
    CompositeResult,
    defer_composite,
    ensure_schema,
    make_app,
    result_path,
)

sys.path.insert(1, str(Path(__file__).parent.parent / "postprocess"))  # composite_kit
sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit
from composite_kit import SyntheticParticipant, write_synthetic_call
from jobs_kit import node, stop_all, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
RID = "rec-queue-1"
CALL_SECONDS = 30.0
PARTS = [
    SyntheticParticipant("agent", 1000, start=0.0, phase=0.0, audio_drift_ppm=0, sender_skew=0.0),
    SyntheticParticipant("customer", 2500, start=0.0, phase=0.5, audio_drift_ppm=0, sender_skew=0.0),
]


def job_row(url: str, job_id: int) -> tuple[str, int] | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


async def _defer(url: str) -> int:
    await ensure_schema(url)
    app = make_app(url)
    async with app.open_async():
        return await defer_composite(app, RID, Profile.HD)


def test_a_worker_killed_mid_composite_another_builds_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    folder = data_dir / "recordings" / RID
    write_synthetic_call(folder, PARTS, windows=[(0.0, CALL_SECONDS)], call_seconds=CALL_SECONDS)
    job_id = asyncio.run(_defer(url))  # queued before any worker: whichever starts first takes it
    off = "[janus]\nenabled = false\n"
    workers = {name: node(tmp_path, name, url, ["worker"], data_dir, off)[0] for name in ("w1", "w2")}
    try:
        work = data_dir / "composites" / "work"

        def building() -> Path | None:  # the attempt's folder names the worker's pid
            return (
                next((p for p in work.iterdir() if p.name.startswith(f"{RID}.{job_id}.")), None)
                if work.is_dir()
                else None
            )

        first = wait_for("a worker building the composite", building, 120)
        pid = int(first.name.rsplit(".", 1)[1])
        victim = next(name for name, p in workers.items() if p.pid == pid)
        assert job_row(url, job_id) == ("doing", 0)
        os.kill(pid, signal.SIGKILL)
        workers[victim].wait(10)
        assert not (folder / "composite-hd.mp4").exists()  # killed before it finished

        wait_for(
            "the job done by the other worker",
            lambda: (job_row(url, job_id) or ("", 0))[0] == "succeeded",
            180,
        )
        survivor = next(name for name in workers if name != victim)
        out = (tmp_path / f"{survivor}.log").read_text()
        assert "composite-hd.mp4 built" in out
        # left under the attempt's hidden name for the recorder that queued it (none here) to take
        result = CompositeResult.model_validate_json(result_path(data_dir, RID, job_id).read_bytes())
        assert result.file == "composite-hd.mp4" and result.staged is not None and result.error is None
        assert not (folder / "composite-hd.mp4").exists()
        with av.open(str(folder / result.staged)) as c:
            assert c.streams.video[0].codec_context.width == 1280
            assert c.duration is not None and abs(c.duration / 1e6 - CALL_SECONDS) < 1.0
    finally:
        stop_all(list(workers.values()))
        for name in workers:  # shown when the test fails
            print(f"== {name}", (tmp_path / f"{name}.log").read_text()[-3000:])


def test_composites_come_first() -> None:
    assert PRIORITIES["composites"] > PRIORITIES["transcripts"] > PRIORITIES["exports"]
    task = make_app("postgresql:///unused").tasks[COMPOSITE_TASK]
    assert task.queue == "composites" and task.priority == PRIORITIES["composites"]
