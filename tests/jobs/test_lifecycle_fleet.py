"""The lifecycle on a fleet, on a real PostgreSQL catalog: each node has its own catalog connection, as
separate API nodes do. One pass at a time across the nodes (recorder/lifecycle/fleet_pass.py): a pass
that is due on two nodes deletes a recording once; the lock goes with a node that dies holding it; an
export schedule due on two nodes at once starts one export (recorder/lifecycle/exports.py fire_due); the
`recording.deleted` a worker keeps in the catalog is sent once by the API nodes (recorder/lifecycle/
pending.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from postgres_kit import PostgresServer
from service_kit import until

from recorder.jobs.exports import ExportDispatch
from recorder.jobs.queue import ensure_schema, make_app
from recorder.lifecycle.exports import LOST_AFTER, QUEUEINGS
from recorder.lifecycle.fleet_pass import PASS_LOCK, PassBusyError, fleet_pass
from recorder.lifecycle.models import ExportFilter, ExportRequest, JobState, ScheduleRequest
from recorder.lifecycle.pending import PendingWebhooks
from recorder.lifecycle.rules import KeepPeriods
from recorder.lifecycle.service import Lifecycle
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.local import LocalStore

sys.path.insert(1, str(Path(__file__).parent.parent / "lifecycle"))  # vault
from vault import DAY, T0, Vault, close, open_vault

pytestmark = pytest.mark.timeout(60)
SETTINGS = LifecycleSettings(defaults=KeepPeriods(originals=30, composite=30), interval_seconds=3600)
KEY = Ed25519PrivateKey.generate()


def lifecycle_of(vault: Vault) -> Lifecycle:
    """A node's lifecycle over the vault's catalog connection and its store."""
    lc = Lifecycle(
        SETTINGS, vault.root, vault.db, vault.catalog, vault.audit, [], vault.recordings_dir, lambda _: False
    )
    lc.deletion = vault.scheduler(SETTINGS)
    lc.holds = vault.holds()
    return lc


def nodes(tmp_path: Path, url: str) -> tuple[Vault, Vault]:
    store = LocalStore(tmp_path / "store")
    return open_vault(tmp_path, store, url), open_vault(tmp_path, store, url)


async def test_a_pass_due_on_two_nodes_deletes_once(tmp_path: Path, postgres_server: PostgresServer) -> None:
    a, b = nodes(tmp_path, postgres_server.create_database())
    try:
        a.add("rec-old")
        a.clock.now = b.clock.now = T0 + 31 * DAY
        one, two = lifecycle_of(a), lifecycle_of(b)
        async with fleet_pass(a.db) as held:  # node a's pass runs
            assert held
            assert await two.run_pass(wait=None) is None  # b's periodic pass skips its turn
            with pytest.raises(PassBusyError):  # one asked through the API waits, bounded
                await two.run_pass(wait=0.5)
        assert a.keys("rec-old")  # nothing deleted while a held the lock with no pass

        reports = await asyncio.gather(one.run_pass(), two.run_pass())  # both due: one after the other
        deleted = [r[0].deleted_whole for r in reports if r is not None]
        assert sorted(deleted) == [[], ["rec-old"]]
        assert a.keys("rec-old") == [] and a.row("rec-old")["status"] == "deleted"
        events = [e for e, _ in a.published + b.published if e.type.value == "recording.deleted"]
        assert len(events) == 1
        assert [e.target for e in await a.entries("recording.retention_delete")] == ["rec-old"]
    finally:
        await close(a)
        await close(b)


async def test_a_node_killed_holding_the_lock_lets_the_next_pass_run(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    a, b = nodes(tmp_path, url)
    holder = await asyncio.create_subprocess_exec(  # a node mid-pass: its session holds the lock
        sys.executable,
        "-c",
        "import psycopg, sys, time\n"
        f"c = psycopg.connect({url!r}, autocommit=True)\n"
        f"c.execute('SELECT pg_advisory_lock({PASS_LOCK})')\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        async with asyncio.timeout(20):
            assert (await holder.stdout.readline()).strip() == b"held"
        node = lifecycle_of(b)
        assert await node.run_pass(wait=None) is None
        holder.kill()  # SIGKILL: its connection goes, and the lock with it
        await holder.wait()

        async def ran() -> bool:
            return await node.run_pass(wait=None) is not None

        await until(ran, 20)
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await close(a)
        await close(b)


async def test_a_schedule_due_on_two_nodes_exports_once(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    a, b = nodes(tmp_path, postgres_server.create_database())
    try:
        a.add("rec-day", finished=T0 + 60)
        one, two = a.exports(SETTINGS, KEY), b.exports(SETTINGS, KEY)
        request = ScheduleRequest(cron="0 3 * * *", filter=ExportFilter(room="billing"))
        schedule = await one.add_schedule(request, "admin")
        a.clock.now = b.clock.now = schedule.next_run.timestamp() + 1
        fired = await asyncio.gather(one.fire_due(), two.fire_due())  # both nodes at once
        jobs = [j for f in fired for j in f]
        assert len(jobs) == 1
        rows = a.db.submit(
            lambda: a.db.connection.execute("SELECT job_id, schedule_id FROM export_jobs").fetchall()
        ).result()
        assert [(r["job_id"], r["schedule_id"]) for r in rows] == [(jobs[0], schedule.schedule_id)]
        [after] = await two.schedules()
        assert after.next_run > schedule.next_run and after.last_run is not None
        assert await one.fire_due() == [] and await two.fire_due() == []  # not again until its next run

        async def exported() -> bool:  # the one job runs (on the node that fired it)
            job = await one.get(jobs[0])
            return job is not None and job.state is JobState.FINISHED and job.done == 1

        await until(exported, 30)
        assert one.bundle_path(jobs[0], "rec-day") is not None
    finally:
        await close(a)
        await close(b)


async def test_a_deletion_a_worker_made_is_announced_once_by_the_api_nodes(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    a, b = nodes(tmp_path, postgres_server.create_database())
    try:
        a.add("rec-w")
        a.clock.now = T0 + 31 * DAY
        worker = lifecycle_of(a)
        kept = PendingWebhooks(a.db)
        worker.deletion.publish = lambda: kept.keep  # as on a worker (recorder/jobs/lifecycle.py)
        ran = await worker.run_pass()
        assert ran is not None and ran[0].deleted_whole == ["rec-w"]
        assert a.published == []  # nothing sent by the worker
        api_a, api_b = PendingWebhooks(a.db), PendingWebhooks(b.db)
        sent = await asyncio.gather(api_a.send("api-a", a.publish), api_b.send("api-b", b.publish))
        assert sorted(sent) == [0, 1]  # one node claims it
        events = [(e.type.value, e.data.recording_id, msg) for e, msg in a.published + b.published]
        assert events == [("recording.deleted", "rec-w", "deleted-rec-w-all")]
        await kept.keep(*(a.published + b.published)[0])  # kept again (a resumed deletion): sent once
        assert await api_a.send("api-a", a.publish) == 0
    finally:
        await close(a)
        await close(b)


async def test_an_export_a_worker_ended_is_announced_once_by_the_api_nodes(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    a, b = nodes(tmp_path, postgres_server.create_database())
    try:
        a.add("rec-w")
        worker, api_a, api_b = a.exports(SETTINGS, KEY), a.exports(SETTINGS, KEY), b.exports(SETTINGS, KEY)
        worker.announces = False  # a worker: no webhooks
        worker_job = await api_a.create(ExportRequest(filter=ExportFilter(room="billing")), "auditor")
        await api_a.stop()  # (no queue here: node a started it itself; stopped, the worker takes it)
        a.published.clear()
        a.db.submit(  # as a worker finds it in the catalog: queued
            lambda: a.db.connection.execute(
                "UPDATE export_jobs SET state = 'queued' WHERE job_id = ?", (worker_job.job_id,)
            )
        ).result()
        await worker.run_attempt(worker_job.job_id, "7.0.123")
        assert a.published == []  # nothing announced by the worker
        claims = await asyncio.gather(api_a.announce_ended("api-a"), api_b.announce_ended("api-b"))
        assert sorted(claims) == [0, 1]  # one node claims it
        events = [(e.type.value, msg) for e, msg in a.published + b.published]
        assert events == [("export.finished", f"export-{worker_job.job_id}-finished")]
        assert await api_a.announce_ended("api-a") == 0  # never again
    finally:
        await close(a)
        await close(b)


async def test_an_export_the_queue_lost_is_queued_again_then_failed(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    a, b = nodes(tmp_path, url)
    await ensure_schema(url)
    app = make_app(url)
    try:
        async with app.open_async():
            a.add("rec-q")
            api = a.exports(SETTINGS, KEY)
            api.queue = ExportDispatch(app)
            job = await api.create(ExportRequest(filter=ExportFilter(room="billing")), "auditor")
            assert await queued(url, job.job_id) == ["todo"]
            await api.queue.defer(job.job_id)  # queued once: a second queueing while it waits is ignored
            assert await queued(url, job.job_id) == ["todo"]
            a.clock.now += LOST_AFTER + 1
            assert await api.requeue_lost() == []  # it is in the queue
            for n in range(QUEUEINGS):  # each queue job ended without ending the export (a worker lost)
                await set_status(url, job.job_id, "failed")
                assert await api.requeue_lost() == [job.job_id]
                if n < QUEUEINGS - 1:
                    assert (await queued(url, job.job_id))[-1] == "todo"  # queued again
            ended = await api.get(job.job_id)
            assert ended is not None and ended.state is JobState.FAILED
            assert ended.error == f"{QUEUEINGS} jobs of the job queue ended without ending the export"
            assert [e.type.value for e, _ in a.published] == ["export.failed"]
    finally:
        await close(a)
        await close(b)


async def queued(url: str, job_id: str) -> list[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        rows = await (
            await conn.execute(
                "SELECT status::text FROM procrastinate_jobs WHERE args->>'job_id' = %s ORDER BY id",
                (job_id,),
            )
        ).fetchall()
    return [str(r[0]) for r in rows]


async def set_status(url: str, job_id: str, status: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            "UPDATE procrastinate_jobs SET status = %s WHERE args->>'job_id' = %s AND status = 'todo'",
            (status, job_id),
        )
