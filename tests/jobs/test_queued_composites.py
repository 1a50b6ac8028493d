"""Composites built by queue workers end as in-process ones do (recorder/jobs/sink.py): a recorder node
(recorder + api roles, ingest API, moto S3 store, webhooks) records a real call, a separate worker node
builds its composites from the shared data folder, and the recorder adds them to a new signed manifest
revision, stores them, and announces them once — also when the worker building it is SIGKILLed and
another one builds it again, and for an encrypted recording (the real `age` tool decrypts it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest
from age_kit import age_decrypt, keygen
from archive_kit import Receiver
from media import ffprobe_errors
from postgres_kit import PostgresServer
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer
from serve_process import request

sys.path.insert(1, str(Path(__file__).parent.parent / "postprocess"))  # composite_kit
sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit, ingest_call_kit
from composite_kit import Publisher
from ingest_call_kit import record_call, references
from jobs_kit import node, stop_all, wait_for
from queued_kit import api_get, archive_config, kinds, recording_id, show_logs, stored, up

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
KEY = "queued-composites-admin-key-0123456789abcdef"
CALLERS = [Publisher("alice", tone=1000, seconds=4.0), Publisher("bob", tone=2500, seconds=4.0)]


def recorder_config(moto: MotoServer, receiver: Receiver, spool: Path, recipients: list[str]) -> str:
    encryption = f"[archive.encryption]\nrecipients = {json.dumps(recipients)}\n" if recipients else ""
    return archive_config(moto, receiver, spool) + encryption


def composite_config(profile: str, audio_mix: bool, fps: int = 10) -> str:
    return (
        f'[composite]\nenabled = true\nprofiles = ["{profile}"]\nfps = {fps}\nlayout = "side-by-side"\n'
        f"audio_mix = {str(audio_mix).lower()}\n"
    )


def prefix_of(moto: MotoServer, rid: str) -> str:
    for obj in moto.client().list_objects(PLAIN_BUCKET, recursive=True):
        key = str(obj.object_name)
        if key.endswith(f"/{rid}/manifest.json"):
            return key.removesuffix("manifest.json")
    raise AssertionError(f"no manifest of {rid} in the store")


def verify(
    moto: MotoServer, rid: str, tmp_path: Path, port: int, *identity: str
) -> subprocess.CompletedProcess[str]:
    pem = tmp_path / "signing.pub"
    pem.write_text(api_get(port, "/v1/signing-key", KEY)["pem"])
    env = {
        **os.environ,
        "CALLVAULT_S3_ENDPOINT": moto.endpoint,
        "CALLVAULT_S3_ACCESS_KEY": ACCESS_KEY,
        "CALLVAULT_S3_SECRET_KEY": SECRET_KEY,
        "CALLVAULT_S3_SECURE": "false",
    }
    target = f"s3://{PLAIN_BUCKET}/{prefix_of(moto, rid)}"
    return subprocess.run(
        [sys.executable, "-m", "recorder.cli", "verify", target, "--public-key", str(pem), *identity],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def test_a_worker_built_composite_is_in_the_manifest_the_store_and_announced_once(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    refs = await asyncio.to_thread(references, tmp_path / "refs", CALLERS)
    composite = composite_config("sd", audio_mix=True)
    rec, port = node(
        tmp_path, "recorder", url, ["recorder", "api"], data_dir,
        recorder_config(moto_server, receiver, tmp_path / "spool", []), composite, f'admin_key = "{KEY}"\n',
    )  # fmt: skip
    worker, _ = node(tmp_path, "worker", url, ["worker"], data_dir, "[janus]\nenabled = false\n", composite)
    procs = [rec, worker]
    try:
        await asyncio.to_thread(wait_for, "recorder", lambda: up(rec, port), 60)
        await record_call(f"http://127.0.0.1:{port}", KEY, "room-q1", refs)
        rid = await recording_id(receiver, 30)
        await receiver.wait_for(rid, "composite.finished", 180)
        folder = data_dir / "recordings" / rid
        # the recorder keeps the folder until the worker's composites are in (delete_local_after_upload)
        await asyncio.to_thread(wait_for, "the local folder deleted", lambda: not folder.exists(), 60)
        await asyncio.to_thread(
            wait_for,
            "every composite announced",
            lambda: kinds(receiver, rid).count("composite.finished") >= 2,
            60,
        )
        assert not list((tmp_path / "spool" / "queued-composites").glob("*.json"))
        assert not list((data_dir / "composites" / "results").glob("*.json"))

        events = kinds(receiver, rid)
        assert events.count("recording.finished") == 1 and "composite.failed" not in events
        assert events.index("recording.finished") < events.index("composite.finished")
        names = sorted(
            r.event.data.object.name for r in receiver.of(rid) if r.event.type.value == "composite.finished"
        )
        assert names == ["composite-audio.m4a", "composite-sd.mp4"]  # once each

        objects = await asyncio.to_thread(stored, moto_server, rid)
        manifest = json.loads(objects["manifest.json"])
        assert manifest["revision"] == 2 and manifest["previous"]["name"] == "manifest.1.json"
        assert "manifest.2.json" not in objects  # one revision
        listed = {o["name"]: o for o in manifest["objects"]}
        for name in names:
            assert listed[name]["size"] == len(objects[name])
            assert ffprobe_errors_of(tmp_path, name, objects[name]) == ""
        link = next(r.event.data.link for r in receiver.of(rid) if r.event.type.value == "composite.finished")
        got = await asyncio.to_thread(fetch, link.url)
        assert got in (objects["composite-sd.mp4"], objects["composite-audio.m4a"])

        checked = await asyncio.to_thread(verify, moto_server, rid, tmp_path, port)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # the API lists and serves it from the store
        detail = api_get(port, f"/v1/recordings/{rid}", KEY)
        assert detail["manifest"]["revision"] == 2
        links = {f["name"] for f in api_get(port, f"/v1/recordings/{rid}/links", KEY)["files"]}
        assert {"composite-sd.mp4", "composite-audio.m4a"} <= links
        assert "composite-sd.mp4 built" in (tmp_path / "worker.log").read_text()
        metrics = request(f"http://127.0.0.1:{port}/metrics")[1].splitlines()
        assert "callvault_composite_queue_handed_over 1.0" in metrics
        assert "callvault_composite_queue_waiting 0.0" in metrics
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["recorder", "worker"])


async def test_a_worker_killed_mid_build_an_encrypted_recording_is_still_announced_once(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    identity = tmp_path / "auditor.key"
    recipient = keygen(identity)
    refs = await asyncio.to_thread(references, tmp_path / "refs", CALLERS)
    composite = composite_config("hd", audio_mix=False, fps=30)  # a build long enough to be caught in
    rec, port = node(
        tmp_path, "recorder", url, ["recorder", "api"], data_dir,
        recorder_config(moto_server, receiver, tmp_path / "spool", [recipient]), composite,
        f'admin_key = "{KEY}"\n',
    )  # fmt: skip
    off = "[janus]\nenabled = false\n"
    workers = {
        name: node(tmp_path, name, url, ["worker"], data_dir, off, composite)[0] for name in ("w1", "w2")
    }
    procs = [rec, *workers.values()]
    try:
        await asyncio.to_thread(wait_for, "recorder", lambda: up(rec, port), 60)
        await record_call(f"http://127.0.0.1:{port}", KEY, "room-q2", refs)
        rid = await recording_id(receiver, 30)
        work = data_dir / "composites" / "work"

        def building() -> Path | None:  # the attempt's folder: <rid>.<job>.<attempt>.<pid>
            if not work.is_dir():
                return None
            return next((p for p in work.iterdir() if p.name.startswith(f"{rid}.")), None)

        first = await asyncio.to_thread(wait_for, "a worker building the composite", building, 120)
        pid = int(first.name.rsplit(".", 1)[1])
        victim = next(name for name, p in workers.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        workers[victim].wait(10)

        await receiver.wait_for(rid, "composite.finished", 180)
        folder = data_dir / "recordings" / rid
        await asyncio.to_thread(wait_for, "the plaintext folder deleted", lambda: not folder.exists(), 60)
        survivor = next(name for name in workers if name != victim)
        assert "composite-hd.mp4 built" in (tmp_path / f"{survivor}.log").read_text()
        with psycopg.connect(url, autocommit=True) as conn:  # one job, taken again after the kill
            rows = conn.execute(
                "SELECT status, attempts FROM procrastinate_jobs WHERE args->>'recording_id' = %s", (rid,)
            ).fetchall()
        assert [(str(s), int(a)) for s, a in rows] == [("succeeded", 2)]

        events = kinds(receiver, rid)
        assert events.count("composite.finished") == 1 and "composite.failed" not in events
        objects = await asyncio.to_thread(stored, moto_server, rid)
        manifest = json.loads(objects["manifest.json"])
        assert manifest["revision"] == 2 and "manifest.2.json" not in objects  # one revision
        (obj,) = [o for o in manifest["objects"] if o["name"] == "composite-hd.mp4"]
        assert obj["encryption"] is not None
        sealed = objects[obj["key"].split(f"/{rid}/", 1)[1]]  # its ciphertext, under its own key
        plain = await asyncio.to_thread(age_decrypt, identity, sealed)
        assert ffprobe_errors_of(tmp_path, "composite-hd.mp4", plain) == ""
        checked = await asyncio.to_thread(
            verify, moto_server, rid, tmp_path, port, "--identity", str(identity)
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["recorder", "w1", "w2"])


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def ffprobe_errors_of(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / "probe" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return ffprobe_errors(path)
