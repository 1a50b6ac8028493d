"""Room control across a fleet on a real Janus 1.1.2 (in the test's network namespace): a recorder node
(role recorder only, its SFU bridge) records only rooms turned on; an API-only node turns the room on, pauses
and resumes its recording and stops it — each command handed to the recorder through the PostgreSQL catalog
and executed by its Janus bridge (RTP forwarders created and removed), as a single node's API would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from janus_fixture import ADMIN_KEY, ROOM, ROOM_SECRET, JanusServer, start_or_skip
from netns import NetNamespace
from postgres_kit import PostgresServer
from serve_process import request
from service_kit import free_port_base, free_tcp_port
from webrtc import PublisherProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
T = TypeVar("T")
KEY = "room-control-janus-admin-key-0123456789ab"
EVENTS = "evt-room-control"


def _serve(tmp_path: Path, name: str, url: str, body: str, port: int) -> subprocess.Popen[bytes]:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{tmp_path / name}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n' + body
        + f'[api]\ncatalog_url = "{url}"\nadmin_key = "{KEY}"\nmetrics_require_key = false\n'
        + f'[fleet]\nnode_name = "{name}"\nheartbeat_seconds = 0.5\ndead_after_seconds = 6\n'
        + "command_timeout_seconds = 10\n[composite]\nenabled = false\n"
    )  # fmt: skip
    with (tmp_path / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    try:
        status, text = request(f"http://127.0.0.1:{port}{path}", method, data, headers)
    except OSError:
        return 0, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


async def wait_for(what: str, check: Callable[[], T | None], within: float) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def test_an_api_node_starts_pauses_and_stops_a_janus_room_on_its_recorder(
    netns_for_test: NetNamespace, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    ns = netns_for_test
    url = postgres_server.create_database()
    rec_port, api_port, rtp = free_tcp_port(), free_tcp_port(), free_port_base(40)
    janus = JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8",
        sampleevh_url=f"http://127.0.0.1:{rec_port}/janus/events?token={EVENTS}",
    )
    start_or_skip(janus)
    procs: list[subprocess.Popen[bytes]] = []
    publisher: PublisherProcess | None = None
    try:
        procs.append(
            _serve(
                tmp_path, "rec-a", url,
                f'rtp_bind = "127.0.0.1"\nrtp_port_min = {rtp}\nrtp_port_max = {rtp + 39}\n'
                'roles = ["recorder"]\n[recorder]\nsegment_seconds = 1.0\n'
                f'[janus]\nws_url = "{janus.ws_url}"\nadmin_key = "{ADMIN_KEY}"\n'
                f'room_secret = "{ROOM_SECRET}"\nevents_token = "{EVENTS}"\nempty_room_grace = 1.0\n'
                "record_rooms = []\n",
                rec_port,
            )
        )  # fmt: skip
        procs.append(_serve(tmp_path, "api-1", url, 'roles = ["api"]\n[janus]\nenabled = false\n', api_port))
        await wait_for(
            "rec-a registered",
            lambda: (f := _call(api_port, "GET", "/v1/recorders"))[0] == 200 and f[1]["alive"] == 1,
            90,
        )
        publisher = await PublisherProcess.start(
            janus.ws_url,
            ROOM,
            "agent",
            codec="vp8",
            seconds=40.0,
            fps=15,
            ice_address=ns.address,
            netns=ns.name,
        )
        await publisher.event("media", within=30)

        def recording() -> dict[str, Any] | None:
            status, page = _call(api_port, "GET", f"/v1/recordings?room={ROOM}&limit=5")
            return page["items"][0] if status == 200 and page["items"] else None

        # record_rooms = []: the publisher is not recorded until the API node turns the room on
        assert recording() is None
        status, out = _call(api_port, "POST", f"/v1/rooms/{ROOM}/start", {})
        assert status == 200 and out["recording"] is True, out
        rid = (await wait_for("recording started by rec-a", recording, 30))["recording_id"]
        await wait_for("media written", lambda: (r := recording()) is not None and r["bytes"] > 0, 30)

        status, out = _call(api_port, "POST", f"/v1/recordings/{rid}/pause", {"reason": "card number"})
        assert status == 200 and out["paused"] is True, out
        status, out = _call(api_port, "POST", f"/v1/recordings/{rid}/resume")
        assert status == 200 and out["paused"] is False, out

        status, out = _call(api_port, "POST", f"/v1/rooms/{ROOM}/stop")
        assert status == 200 and out["recording"] is False, out

        def finished() -> dict[str, Any] | None:
            status, detail = _call(api_port, "GET", f"/v1/recordings/{rid}")
            return detail if status == 200 and detail["status"] == "finished" else None

        done = await wait_for("finished on rec-a", finished, 60)
        assert done["recorder"] == "rec-a"
        [pause] = done["pauses"]
        assert pause["by"] == "bootstrap-admin" and pause["reason"] == "card number" and pause["end_time"]
        assert done["track_list"] and all(t["bytes"] > 0 for t in done["track_list"]), done["track_list"]
        # the publisher still publishes, but the room is off: no new recording
        status, page = _call(api_port, "GET", f"/v1/recordings?room={ROOM}&status=recording")
        assert status == 200 and page["items"] == [], page
    finally:
        if publisher is not None:
            publisher.terminate()
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        janus.stop()
