"""What the queued-work tests (a recorder node archiving to moto S3 with webhooks, worker nodes) share:
the recorder's archive settings, the stored objects, the API, node readiness, webhook kinds and logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from archive_kit import Receiver
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer
from serve_process import request
from service_kit import free_port_base


def archive_config(moto: MotoServer, receiver: Receiver, spool: Path) -> str:
    """A recorder on 127.0.0.1 (Janus off) archiving to `moto` and announcing to `receiver`; more tables
    may follow (the [archive] table is open last but one: [archive.webhooks.endpoints] ends it)."""
    base = free_port_base()
    return (
        f'rtp_bind = "127.0.0.1"\nrtp_port_min = {base}\nrtp_port_max = {base + 39}\n'
        "[janus]\nenabled = false\n"
        "[archive]\ncompletion_poll = 0.2\n"
        f'[archive.storage]\nbackend = "s3"\n[archive.storage.s3]\nendpoint = "{moto.endpoint}"\n'
        f'bucket = "{PLAIN_BUCKET}"\nsecure = false\n'
        f'access_key = "{ACCESS_KEY}"\nsecret_key = "{SECRET_KEY}"\n'
        f'[archive.spool]\ndir = "{spool}"\npoll_interval = 0.1\nretry_initial = 0.1\n'
        f'[archive.webhooks]\noutbox_path = "{spool / "webhooks.sqlite3"}"\npoll_interval = 0.1\n'
        f'[[archive.webhooks.endpoints]]\nid = "crm"\nurl = "{receiver.url}"\nsecret = "{receiver.secret}"\n'
    )


def stored(moto: MotoServer, rid: str) -> dict[str, bytes]:
    """The recording's objects in the store: name -> bytes."""
    client = moto.client()
    found = {}
    for obj in client.list_objects(PLAIN_BUCKET, recursive=True):
        key = str(obj.object_name)
        if f"/{rid}/" in key:
            response = client.get_object(PLAIN_BUCKET, key)
            try:
                found[key.split(f"/{rid}/", 1)[1]] = response.read()
            finally:
                response.close()
                response.release_conn()
    return found


def api_get(port: int, path: str, key: str) -> Any:
    status, body = request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"})
    assert status == 200, body
    return json.loads(body)


def up(proc: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the node answers (AssertionError when it exited)."""
    assert proc.poll() is None, f"the node exited with {proc.returncode}"
    try:
        return request(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def kinds(receiver: Receiver, rid: str) -> list[str]:
    return [r.event.type.value for r in receiver.of(rid)]


def show_logs(tmp_path: Path, names: list[str]) -> None:
    for name in names:  # shown when the test fails
        log = tmp_path / f"{name}.log"
        print(f"== {name}", log.read_text()[-4000:] if log.exists() else "")


async def recording_id(receiver: Receiver, within: float) -> str:
    async with asyncio.timeout(within):
        while True:
            started = [r for r in receiver.received if r.event.type.value == "recording.started"]
            if started:
                return str(started[0].event.data.recording_id)
            receiver.changed.clear()
            await receiver.changed.wait()
