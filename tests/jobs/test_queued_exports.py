"""The lifecycle of a fleet with a real PostgreSQL, the moto S3 server as the store and `callvault serve`
processes. Exports through the job queue (recorder/jobs/exports.py): an API-only node queues the export,
a worker-only node builds its bundles (from the store, signed with the fleet's key), the API node serves
them and announces the job's end once; a worker SIGKILLed mid-export leaves its job to the other worker,
which goes on where it stopped (the bundles already made are kept, none is half-written, one
`export.finished`). Deletions: two API nodes passing every half second delete a due recording once; with
`lifecycle.run_on = "workers"` an API-only node runs no pass, a worker-only node deletes and the API node
sends its `recording.deleted` once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from archive_kit import Receiver
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from postgres_kit import PostgresServer
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer
from serve_process import request

from recorder.jobs.queue import PRIORITIES
from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.manifest.signing import load_private_key_file, write_private_key
from recorder.storage.s3 import S3Store
from recorder.storage.settings import S3Settings

sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit, queued_kit
sys.path.insert(1, str(Path(__file__).parent.parent / "lifecycle"))  # vault
from jobs_kit import node, stop_all, wait_for
from queued_kit import archive_config, show_logs, up
from vault import open_vault

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
ADMIN = "queued-exports-admin-key-0123456789abcdef"
NAMES = ["api", "w1", "w2"]


def seed(tmp_path: Path, moto: MotoServer, url: str, rids: list[str], size: int) -> None:
    """Finished recordings of room 'sales' in the catalog, their objects in the store."""
    settings = S3Settings.model_validate(
        {
            "endpoint": moto.endpoint,
            "bucket": PLAIN_BUCKET,
            "secure": False,
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
        }
    )
    vault = open_vault(tmp_path / "seed", S3Store(settings), url)
    try:
        for n, rid in enumerate(rids):
            media = os.urandom(size)
            vault.add(
                rid, room="sales", objects={"1001-video-0.webm": media, "1002-audio-1.webm": media[: n + 1]}
            )
    finally:
        vault.db.close()


def config(
    tmp_path: Path,
    moto: MotoServer,
    receiver: Receiver,
    name: str,
    lifecycle: str = "interval_seconds = 3600\n",
) -> str:
    """The node's archive (the store, the fleet's signing key, webhooks on the API node only matter)."""
    key = tmp_path / "signing.pem"
    if not key.exists():
        write_private_key(Ed25519PrivateKey.generate(), key)
    return (
        archive_config(moto, receiver, tmp_path / f"spool-{name}")  # top-level keys first, Janus off
        + f'[archive.signing]\nkey_file = "{key}"\n'
        + "[lifecycle]\n"
        + lifecycle
    )


def call(port: int, path: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    status, text = request(f"http://127.0.0.1:{port}{path}", method, data, headers)
    return status, json.loads(text) if text.startswith(("{", "[")) else text


def download(port: int, job_id: str, rid: str, to: Path) -> Path:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/exports/{job_id}/bundles/{rid}",
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        to.write_bytes(response.read())
    return to


def finished(port: int, job_id: str) -> dict[str, Any] | None:
    status, job = call(port, f"/v1/exports/{job_id}")
    assert status == 200, job
    assert job["state"] != "failed", job
    return job if job["state"] == "finished" else None


def queue_jobs(url: str) -> list[tuple[str, int, str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT queue_name, priority, status::text, attempts FROM procrastinate_jobs"
            " WHERE task_name = 'callvault:export'"
        ).fetchall()
    return [(str(r[0]), int(r[1]), str(r[2]), int(r[3])) for r in rows]


def public_key(tmp_path: Path) -> Any:
    return load_private_key_file(tmp_path / "signing.pem").public_key()


def check_bundles(tmp_path: Path, port: int, job: dict[str, Any], rids: list[str]) -> None:
    """Every bundle downloaded through the API node verifies with the fleet's key."""
    assert [b["recording_id"] for b in job["bundles"]] == rids
    key = public_key(tmp_path)
    for bundle in job["bundles"]:
        path = download(
            port, job["job_id"], bundle["recording_id"], tmp_path / f"{bundle['recording_id']}.zip"
        )
        assert path.stat().st_size == bundle["size"]
        report = verify_bundle(path, key)
        # the synthetic recordings have no manifest: only that check fails, every file is as signed
        assert all("manifest" in p for p in report.problems), report.problems
        assert report.files_checked >= 4


def webhooks_sent(port: int) -> bool:
    """Whether the node's webhook outbox is empty (every event it queued delivered)."""
    return "callvault_webhook_backlog 0.0" in call(port, "/metrics")[1]


async def exports_announced(receiver: Receiver, port: int, job_id: str, within: float) -> list[str]:
    """The export.* webhooks of the job, once one came and the API node's outbox is empty."""

    def of_job() -> list[str]:
        return [
            r.event.type.value
            for r in receiver.received
            if r.event.type.value.startswith("export.") and getattr(r.event.data, "job_id", None) == job_id
        ]

    async with asyncio.timeout(within):
        while not of_job():
            receiver.changed.clear()
            await receiver.changed.wait()
    await asyncio.to_thread(wait_for, "webhooks delivered", lambda: webhooks_sent(port), within)
    return of_job()


async def test_an_export_queued_on_an_api_node_is_built_by_a_worker(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    rids = ["qexp-1", "qexp-2"]
    seed(tmp_path, moto_server, url, rids, 200_000)
    data_dir = tmp_path / "data"  # the shared folder (exports/ among it)
    api, port = node(tmp_path, "api", url, ["api"], data_dir, config(tmp_path, moto_server, receiver, "api"),
                     api=f'admin_key = "{ADMIN}"\n')  # fmt: skip
    procs = [api]
    try:
        await asyncio.to_thread(wait_for, "api node", lambda: up(api, port), 60)
        body = {"filter": {"room": "sales"}, "include": ["originals", "manifests", "audit"]}
        status, job = call(port, "/v1/exports", "POST", body)
        assert status == 202 and job["total"] == 2, job
        job_id = job["job_id"]

        def backlog(n: int) -> Callable[[], bool]:  # read by the API node every 5 s
            def check() -> bool:
                text = call(port, "/metrics")[1]
                return (
                    f"callvault_jobs_exports_pending {n}.0" in text
                    and f"callvault_jobs_pending {n}.0" in text
                )

            return check

        await asyncio.to_thread(wait_for, "the export in the backlog", backlog(1), 15)
        assert call(port, f"/v1/exports/{job_id}")[1]["state"] == "queued"  # the API node builds nothing
        procs.append(
            node(tmp_path, "w1", url, ["worker"], data_dir, config(tmp_path, moto_server, receiver, "w1"))[0]
        )
        done = await asyncio.to_thread(wait_for, "the export built", lambda: finished(port, job_id), 60)
        assert done["done"] == 2 and done["index_sha256"]
        await asyncio.to_thread(check_bundles, tmp_path, port, done, rids)
        assert await exports_announced(receiver, port, job_id, 20) == ["export.finished"]

        assert queue_jobs(url) == [("exports", PRIORITIES["exports"], "succeeded", 1)]  # one attempt
        worker_log = (tmp_path / "w1.log").read_text()
        assert f"export {job_id}: 2 recordings, 0 skipped, finished" in worker_log
        assert f"export {job_id}: 2" not in (tmp_path / "api.log").read_text()  # built by the worker
        await asyncio.to_thread(wait_for, "the backlog back to 0", backlog(0), 15)
        assert not list((data_dir / "exports" / job_id).glob(".*"))  # no attempt's file left
    finally:
        stop_all(procs)
        show_logs(tmp_path, NAMES[:2])


async def test_a_worker_killed_mid_export_another_one_finishes_it(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    rids = [f"qkill-{n}" for n in range(6)]
    seed(tmp_path, moto_server, url, rids, 12_000_000)
    data_dir = tmp_path / "data"
    api, port = node(tmp_path, "api", url, ["api"], data_dir, config(tmp_path, moto_server, receiver, "api"),
                     api=f'admin_key = "{ADMIN}"\n')  # fmt: skip
    configs = {name: config(tmp_path, moto_server, receiver, name) for name in ("w1", "w2")}
    workers = {name: node(tmp_path, name, url, ["worker"], data_dir, c)[0] for name, c in configs.items()}
    procs = [api, *workers.values()]
    try:
        await asyncio.to_thread(wait_for, "api node", lambda: up(api, port), 60)
        status, job = call(
            port, "/v1/exports", "POST", {"filter": {"room": "sales"}, "include": ["originals"]}
        )
        assert status == 202, job
        job_id = job["job_id"]
        out = data_dir / "exports" / job_id

        def writing() -> Path | None:  # .<rid>.zip.<queue job>.<attempt>.<pid>.tmp
            return next(iter(out.glob(".*.zip.*.tmp")), None) if out.is_dir() else None

        part = await asyncio.to_thread(wait_for, "a bundle being written", writing, 60)
        pid = int(part.name.split(".")[-2])
        victim = next(name for name, p in workers.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        workers[victim].wait(10)
        kept = {p.name: p.stat().st_ino for p in out.glob("*.zip")}
        assert len(kept) < len(rids)  # killed mid-export

        done = await asyncio.to_thread(wait_for, "the export finished", lambda: finished(port, job_id), 90)
        assert done["done"] == len(rids)
        assert {p.name: p.stat().st_ino for p in out.glob("*.zip") if p.name in kept} == kept  # not redone
        await asyncio.to_thread(check_bundles, tmp_path, port, done, rids)
        assert await exports_announced(receiver, port, job_id, 20) == ["export.finished"]
        [(_, _, state, attempts)] = queue_jobs(url)  # one queue job, taken again once stalled
        assert state == "succeeded" and attempts == 2
        survivor = next(name for name in workers if name != victim)
        assert f"export {job_id}: {len(rids)} recordings" in (tmp_path / f"{survivor}.log").read_text()
        leftovers = [p.name for p in out.glob(".*") if str(pid) not in p.name]
        assert leftovers == []  # only the dead attempt's half file may remain
    finally:
        stop_all(procs)
        show_logs(tmp_path, NAMES)


async def test_two_api_nodes_delete_a_due_recording_once(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    seed(tmp_path, moto_server, url, ["qdel-1", "qdel-2"], 1000)  # finished in January 2026: long due
    due = "interval_seconds = 0.5\n[lifecycle.defaults]\noriginals = 30\ncomposite = 30\n"
    apis = {
        name: node(
            tmp_path,
            name,
            url,
            ["api"],
            tmp_path / name,  # each API node with an archive keeps its own data_dir (transcript jobs)
            config(tmp_path, moto_server, receiver, name, due),
            api=f'admin_key = "{ADMIN}"\n',
        )
        for name in ("api-a", "api-b")
    }
    try:
        for proc, port in apis.values():
            await asyncio.to_thread(wait_for, "api node", lambda p=proc, n=port: up(p, n), 60)
        for rid in ("qdel-1", "qdel-2"):
            await receiver.wait_for(rid, "recording.deleted", 30)
        for _, port in apis.values():  # a pass of each node after the deletions (each waits for the lock)
            status, report = call(port, "/v1/lifecycle/run", "POST")
            assert status == 200 and report["deleted"] == [], report

        for _, port in apis.values():
            await asyncio.to_thread(wait_for, "webhooks delivered", lambda n=port: webhooks_sent(n), 20)
        status, page = call(apis["api-a"][1], "/v1/audit?action=recording.retention_delete")
        assert sorted(e["target"] for e in page["entries"]) == ["qdel-1", "qdel-2"]  # once each
        for rid in ("qdel-1", "qdel-2"):
            assert [r.event.type.value for r in receiver.of(rid)] == ["recording.deleted"]
            assert call(apis["api-b"][1], f"/v1/recordings/{rid}")[1]["status"] == "deleted"
        assert [o.object_name for o in moto_server.client().list_objects(PLAIN_BUCKET, recursive=True)
                if "/qdel-" in str(o.object_name)] == []  # fmt: skip
    finally:
        stop_all([p for p, _ in apis.values()])
        show_logs(tmp_path, list(apis))


def catalog_status(port: int, rid: str) -> str:
    return str(call(port, f"/v1/recordings/{rid}")[1]["status"])


async def test_passes_run_on_a_worker_node_not_on_the_api_node(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    seed(tmp_path, moto_server, url, ["wdel-1"], 1000)  # finished in January 2026: long due
    due = 'run_on = "workers"\ninterval_seconds = 0.5\n[lifecycle.defaults]\noriginals = 30\ncomposite = 30\n'
    api = node(
        tmp_path,
        "api",
        url,
        ["api"],
        tmp_path / "api",
        config(tmp_path, moto_server, receiver, "api", due),
        api=f'admin_key = "{ADMIN}"\n',
    )
    procs = [api[0]]
    try:
        await asyncio.to_thread(wait_for, "api node", lambda: up(*api), 60)
        with pytest.raises(TimeoutError):  # six of its intervals: the API node deletes nothing
            await asyncio.to_thread(
                wait_for, "deleted by the api node", lambda: catalog_status(api[1], "wdel-1") == "deleted", 3
            )
        worker = node(
            tmp_path,
            "w1",
            url,
            ["worker"],
            tmp_path / "w1",
            config(tmp_path, moto_server, receiver, "w1", due),
        )
        procs.append(worker[0])
        await asyncio.to_thread(
            wait_for, "deleted by the worker", lambda: catalog_status(api[1], "wdel-1") == "deleted", 45
        )
        assert [o.object_name for o in moto_server.client().list_objects(PLAIN_BUCKET, recursive=True)
                if "/wdel-" in str(o.object_name)] == []  # fmt: skip
        status, page = call(api[1], "/v1/audit?action=recording.retention_delete")
        assert status == 200 and [e["target"] for e in page["entries"]] == ["wdel-1"], page
        assert "retention: 1 recordings deleted" in (tmp_path / "w1.log").read_text()
        assert "retention:" not in (tmp_path / "api.log").read_text()
        await receiver.wait_for("wdel-1", "recording.deleted", 20)  # kept by the worker, sent by the API node
        await asyncio.to_thread(wait_for, "webhooks delivered", lambda: webhooks_sent(api[1]), 20)
        assert [r.event.type.value for r in receiver.of("wdel-1")] == ["recording.deleted"]
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["api", "w1"])
