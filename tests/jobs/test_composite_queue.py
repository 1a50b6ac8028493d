"""The recorder's side of queued composites in one process (recorder/jobs/sink.py) on a real PostgreSQL,
with a worker running in the same event loop: a composite a worker cannot build is announced as
composite.failed with the worker's reason (and the folder kept), and a recorder restarted while its
composites wait takes over the job already queued (never queued twice) and hands it over once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import psycopg
import pytest
from archive_kit import FakeTrack, Receiver, local_settings, new_info
from postgres_kit import PostgresServer
from service_kit import until

from postprocess.settings import CompositeSettings
from recorder.archive import Archive
from recorder.jobs.queue import WorkerContext, ensure_schema, make_app, run_worker
from recorder.jobs.settings import JobSettings
from recorder.jobs.sink import TICKETS_DIR, CompositeQueue
from recorder.models import Codec, TrackSummary
from recorder.recording import RecordingInfo

pytestmark = [pytest.mark.timeout(120)]
SD = CompositeSettings(enabled=True, profiles=["sd"])


class Handed:
    """A `publish` that keeps what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], list[str]]] = []

    async def __call__(self, info: RecordingInfo, files: Sequence[str], errors: Sequence[str]) -> None:
        self.calls.append((info.recording_id, list(files), list(errors)))


def unreadable_recording(data_dir: Path, rid: str) -> tuple[RecordingInfo, list[TrackSummary]]:
    """A recording whose track file is not media a composite can be built from."""
    info = new_info(data_dir / "recordings" / rid, rid)
    track = FakeTrack(info.folder, "video-0", Codec.VP8)
    track.segment(0)
    return info, [track.finish()]


async def worker(url: str, data_dir: Path) -> tuple[asyncio.Event, asyncio.Task[None]]:
    app = make_app(url)
    await app.open_async()
    stop = asyncio.Event()
    context = WorkerContext(data_dir=data_dir, composite=SD)
    jobs = JobSettings(heartbeat_seconds=0.5, stalled_seconds=3)

    async def run() -> None:
        try:
            await run_worker(app, context, jobs, stop)
        finally:
            await app.close_async()

    return stop, asyncio.create_task(run())


async def test_a_composite_a_worker_cannot_build_is_announced_failed_with_its_reason(
    tmp_path: Path, postgres_server: PostgresServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    await ensure_schema(url)
    data_dir = tmp_path / "data"
    info, tracks = unreadable_recording(data_dir, "rec-bad-1")
    archive = Archive(local_settings(receiver, completion_poll=0.1), tmp_path)
    app = make_app(url)
    async with app.open_async():
        sink = CompositeQueue(
            app,
            SD,
            data_dir=data_dir,
            tickets_dir=archive.settings.spool.dir / TICKETS_DIR,
            publish=archive.add_composites,
            poll=0.1,
        )
        archive.holds.append(sink.holding)
        await archive.start()
        sink.start()
        stop, running = await worker(url, data_dir)
        try:
            await sink.recording_finished(info, tracks)
            assert sink.holding("rec-bad-1")
            failed = await receiver.wait_for("rec-bad-1", "composite.failed", 60)
            results = data_dir / "composites" / "results"

            async def let_go() -> bool:  # the ticket and the worker's result file removed after the hand-over
                return not sink.holding("rec-bad-1") and not list(results.glob("*.json"))

            await until(let_go, 30)
        finally:
            stop.set()
            await running
            await sink.stop()
            await archive.stop()
    error = failed.event.data.error  # type: ignore[union-attr]
    assert error.startswith("composite-sd.mp4: ") and "see the worker's log" not in error  # its reason
    assert [r.event.type.value for r in receiver.of("rec-bad-1")] == ["composite.failed"]  # once
    assert info.folder.is_dir()  # kept after a failure, as in-process
    with psycopg.connect(url, autocommit=True) as conn:
        (count,) = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() or (0,)
    assert count == 1  # one job for one composite


async def test_a_recorder_restarted_while_its_composites_wait_hands_them_over_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    await ensure_schema(url)
    data_dir = tmp_path / "data"
    tickets = tmp_path / "spool" / TICKETS_DIR
    info, tracks = unreadable_recording(data_dir, "rec-restart-1")
    handed = Handed()
    app = make_app(url)
    async with app.open_async():  # the first run queues, then stops before any worker took the job
        first = CompositeQueue(app, SD, data_dir=data_dir, tickets_dir=tickets, publish=handed, poll=0.1)
        await first.recording_finished(info, tracks)
        await first.stop()
    (ticket,) = tickets.glob("*.json")
    assert handed.calls == [] and json.loads(ticket.read_text())["jobs"] == {"sd": 1}
    # as if it had died between its ticket and the job's id in it: the restart finds the job by its args
    ticket.write_text(json.dumps({**json.loads(ticket.read_text()), "jobs": {}}))

    app = make_app(url)
    async with app.open_async():
        second = CompositeQueue(app, SD, data_dir=data_dir, tickets_dir=tickets, publish=handed, poll=0.1)
        await second.load()
        assert second.holding("rec-restart-1")  # before any worker: the folder stays
        second.start()
        stop, running = await worker(url, data_dir)
        try:

            async def handed_over() -> bool:
                return bool(handed.calls)

            await until(handed_over, 60)
        finally:
            stop.set()
            await running
            await second.stop()
    ((rid, files, errors),) = handed.calls
    assert rid == "rec-restart-1" and files == [] and errors[0].startswith("composite-sd.mp4: ")
    assert not second.holding("rec-restart-1") and not list(tickets.glob("*.json"))
    with psycopg.connect(url, autocommit=True) as conn:
        (count,) = conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone() or (0,)
    assert count == 1  # the restart took over the queued job
