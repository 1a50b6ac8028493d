"""Transcripts made by queue workers end as in-process ones do (recorder/jobs/transcripts.py): a recorder
node (recorder + api roles, ingest API, moto S3 store, webhooks) records a real call in which espeak-ng
says a card number; a separate worker node transcribes it with the packaged Whisper tiny.en and redacts
the card number; the recorder adds both to the recording's manifest, stores them, indexes the transcript
(search finds a spoken word through the API) and announces each once — also when the worker doing it is
SIGKILLed mid-transcription and another one does it again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psycopg
import pytest
from archive_kit import Receiver
from postgres_kit import PostgresServer
from s3_fixture import MotoServer
from serve_process import request

sys.path.insert(1, str(Path(__file__).parent.parent / "postprocess"))  # composite_kit
sys.path.insert(1, str(Path(__file__).parent.parent / "postprocess" / "transcribe"))  # speech
sys.path.insert(1, str(Path(__file__).parent))  # jobs_kit, ingest_call_kit
from composite_kit import Publisher
from ingest_call_kit import record_call
from jobs_kit import node, stop_all, wait_for
from queued_kit import api_get, archive_config, kinds, recording_id, show_logs, stored, up
from speech import speak

pytest.importorskip("faster_whisper")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
KEY = "queued-transcripts-admin-key-0123456789abcdef"
SAYS = (
    "My card number is four five three nine, one four eight eight, zero three four three, six four six seven."
)
NO_COMPOSITES = {"CALLVAULT_COMPOSITE__ENABLED": "false"}
OFF = "[janus]\nenabled = false\n"


def spoken_reference(folder: Path) -> list[tuple[Publisher, Path]]:
    """One publisher: black VP8 video and the sentence said (Opus), in WebM."""
    folder.mkdir(parents=True, exist_ok=True)
    speech = speak(folder, "speech", SAYS)
    out = folder / "pub-bob.webm"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "color=c=black:s=320x240:r=15", "-i", str(speech),
         "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libvpx", "-b:v", "100k", "-g", "15",
         "-deadline", "realtime", "-cpu-used", "8", "-c:a", "copy", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return [(Publisher("bob", tone=0, seconds=0), out)]


def recorder_config(moto: MotoServer, receiver: Receiver, spool: Path) -> str:
    return archive_config(moto, receiver, spool) + "[transcripts]\nenabled = true\nredact = true\n"


def worker_node(tmp_path: Path, name: str, url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    return node(tmp_path, name, url, ["worker"], data_dir, OFF, "", env=NO_COMPOSITES)[0]


def transcript_jobs(url: str, rid: str) -> list[tuple[str, int, str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, attempts, queue_name, priority FROM procrastinate_jobs"
            " WHERE task_name = 'callvault:transcript' AND args->>'recording_id' = %s",
            (rid,),
        ).fetchall()
    return [(str(s), int(a), str(q), int(p)) for s, a, q, p in rows]


async def check_published(
    tmp_path: Path, moto: MotoServer, receiver: Receiver, port: int, data_dir: Path, rid: str
) -> None:
    """Transcript and redacted copy in the manifest and the store, found by search, announced once."""
    await receiver.wait_for(rid, "transcript.ready", 240)
    await receiver.wait_for(rid, "redaction.finished", 120)
    folder = data_dir / "recordings" / rid
    await asyncio.to_thread(wait_for, "the local folder deleted", lambda: not folder.exists(), 60)
    events = kinds(receiver, rid)
    assert events.count("transcript.ready") == 1 and events.count("redaction.finished") == 1, events
    assert "transcript.failed" not in events and "redaction.failed" not in events
    objects = await asyncio.to_thread(stored, moto, rid)
    manifest = json.loads(objects["manifest.json"])
    listed = {o["name"] for o in manifest["objects"]}
    assert {"transcript.json", "transcript.vtt"} <= listed
    redacted = {n for n in listed if n.startswith("redacted-1/")}
    assert "redacted-1/transcript.json" in redacted and "redacted-1/redactions.json" in redacted
    assert set(objects) >= listed
    said = json.loads(objects["transcript.json"])
    text = " ".join(s["text"] for s in said["segments"]).lower()
    assert "card" in text
    masked = json.loads(objects["redacted-1/transcript.json"])
    assert "4539" not in json.dumps(masked) and "four five three nine" not in json.dumps(masked).lower()
    page = api_get(port, "/v1/recordings?" + urllib.parse.urlencode({"q": "card"}), KEY)
    assert [item["recording_id"] for item in page["items"]] == [rid]
    assert page["items"][0]["transcript_hits"]


async def test_a_worker_made_transcript_is_in_the_manifest_the_store_search_and_announced_once(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    refs = await asyncio.to_thread(spoken_reference, tmp_path / "refs")
    rec, port = node(
        tmp_path, "recorder", url, ["recorder", "api"], data_dir,
        recorder_config(moto_server, receiver, tmp_path / "spool"), "", f'admin_key = "{KEY}"\n',
        env=NO_COMPOSITES,
    )  # fmt: skip
    worker = worker_node(tmp_path, "worker", url, data_dir)
    procs = [rec, worker]
    try:
        await asyncio.to_thread(wait_for, "recorder", lambda: up(rec, port), 60)
        await record_call(f"http://127.0.0.1:{port}", KEY, "room-t1", refs)
        rid = await recording_id(receiver, 30)
        await check_published(tmp_path, moto_server, receiver, port, data_dir, rid)
        assert transcript_jobs(url, rid) == [("succeeded", 1, "transcripts", 20)]  # one job, queue, priority
        assert "transcript job" in (tmp_path / "worker.log").read_text()

        # an admin's redaction once the local folder is gone: the recorder restores the audio from the store
        # into a folder of its own, which the workers cannot see: its own pool redacts it (no model needed)
        body = json.dumps({"start": 0.0, "end": 1.0, "reason": "asked by the customer"}).encode()
        status, text = request(
            f"http://127.0.0.1:{port}/v1/recordings/{rid}/redactions",
            "POST",
            body,
            {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        assert status == 202, text
        await asyncio.to_thread(
            wait_for,
            "the admin's redaction announced",
            lambda: kinds(receiver, rid).count("redaction.finished") == 2,
            120,
        )
        assert "redaction.failed" not in kinds(receiver, rid)
        manifest = json.loads((await asyncio.to_thread(stored, moto_server, rid))["manifest.json"])
        assert any(o["name"].startswith("redacted-2/") for o in manifest["objects"])
        assert transcript_jobs(url, rid) == [("succeeded", 1, "transcripts", 20)]  # not queued
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["recorder", "worker"])


async def test_a_worker_killed_mid_transcription_another_one_does_it_and_it_is_announced_once(
    tmp_path: Path, postgres_server: PostgresServer, moto_server: MotoServer, receiver: Receiver
) -> None:
    url = postgres_server.create_database()
    data_dir = tmp_path / "data"
    refs = await asyncio.to_thread(spoken_reference, tmp_path / "refs")
    rec, port = node(
        tmp_path, "recorder", url, ["recorder", "api"], data_dir,
        recorder_config(moto_server, receiver, tmp_path / "spool"), "", f'admin_key = "{KEY}"\n',
        env=NO_COMPOSITES,
    )  # fmt: skip
    workers = {name: worker_node(tmp_path, name, url, data_dir) for name in ("w1", "w2")}
    procs = [rec, *workers.values()]
    try:
        await asyncio.to_thread(wait_for, "recorder", lambda: up(rec, port), 60)
        await record_call(f"http://127.0.0.1:{port}", KEY, "room-t2", refs)
        rid = await recording_id(receiver, 30)
        folder = data_dir / "recordings" / rid

        def working() -> Path | None:  # the attempt's folder: .transcript.<job>.<attempt>.<pid>.tmp
            return next(folder.glob(".transcript.*.tmp"), None) if folder.is_dir() else None

        first = await asyncio.to_thread(wait_for, "a worker transcribing", working, 120)
        pid = int(first.name.rsplit(".", 2)[1])
        victim = next(name for name, p in workers.items() if p.pid == pid)
        os.kill(pid, signal.SIGKILL)
        workers[victim].wait(10)

        await check_published(tmp_path, moto_server, receiver, port, data_dir, rid)
        assert transcript_jobs(url, rid) == [
            ("succeeded", 2, "transcripts", 20)
        ]  # taken again after the kill
        survivor = next(name for name in workers if name != victim)
        assert "transcript job" in (tmp_path / f"{survivor}.log").read_text()
    finally:
        stop_all(procs)
        show_logs(tmp_path, ["recorder", "w1", "w2"])
