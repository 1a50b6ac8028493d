"""A fleet end to end (issue 15 item 6): two real Janus 1.1.2 instances in the test's network namespace,
each followed by its own recorder process (role recorder only: it writes the shared catalog itself, its
recordings on a shared folder as the chart mounts it), one API process, two worker processes, a real
PostgreSQL of the test's own. Real aiortc publishers call on both Janus; PostgreSQL is stopped mid-call and
a call starts during the outage: once PostgreSQL is back its recorder writes it into the catalog while it
goes on; both calls are found through the one API, each with the recorder that made it (the same Janus
room id on both SFUs, distinct recording ids). Their composites are queued to the workers; the worker
building first is SIGKILLed mid-build and the other builds it again (the stalled-job retry). Then a
recorder is SIGKILLed mid-call and a peer (the API node or the other recorder, whichever looks first)
marks its recording failed with the segments recovered.

The recorders have no archive here: a composite a worker built stays under its staged name in the
recording folder (only a recorder's archive gives it its name, a manifest revision and an upload:
tests/jobs/test_queued_composites.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from janus_fixture import ADMIN_KEY, ROOM, ROOM_SECRET, JanusServer, start_or_skip
from media import ffprobe_errors
from netns import NetNamespace
from postgres_kit import PostgresServer, running_server
from serve_process import request
from service_kit import free_port_base, free_tcp_port
from webrtc import PublisherProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
T = TypeVar("T")
KEY = "fleet-e2e-admin-key-0123456789abcdefghijkl"
EVENTS = "evt-fleet-e2e"
DEAD_AFTER = 6.0
COMPOSITE = '[composite]\nenabled = true\nprofiles = ["sd"]\nfps = 15\nlayout = "side-by-side"\n'
JOBS = "[jobs]\nheartbeat_seconds = 0.5\nstalled_seconds = 3\n"


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own: it is restarted mid-run (the session's server is left alone)."""
    with running_server() as server:
        yield server


class Proc:
    def __init__(self, name: str, config: Path, log: Path, port: int) -> None:
        self.name, self.config, self.log, self.port = name, config, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:  # started from the test's thread: inside its namespace too
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "recorder.cli", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CALLVAULT_COMPOSITE__ENABLED": "true"},  # tests turn it off by default
            )
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            status, text = request(
                f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {KEY}"}
            )
        except OSError:
            return 0, None
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


def _serve(
    tmp_path: Path, name: str, url: str, body: str, port: int | None = None, data_dir: Path | None = None
) -> Proc:
    port = port or free_tcp_port()
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{data_dir or tmp_path / name}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n' + body
        + f'[api]\ncatalog_url = "{url}"\nadmin_key = "{KEY}"\nmetrics_require_key = false\n'
        + f'[fleet]\nnode_name = "{name}"\nheartbeat_seconds = 0.5\ndead_after_seconds = {DEAD_AFTER}\n'
    )  # fmt: skip
    return Proc(name, config, tmp_path / f"{name}.log", port)


def recorder(tmp_path: Path, name: str, url: str, janus: JanusServer, port: int) -> Proc:
    rtp = free_port_base(40)
    proc = _serve(
        tmp_path, name, url,
        f'rtp_bind = "127.0.0.1"\nrtp_port_min = {rtp}\nrtp_port_max = {rtp + 39}\nroles = ["recorder"]\n'
        "[recorder]\nsegment_seconds = 1.0\n"
        f'[janus]\nws_url = "{janus.ws_url}"\nadmin_key = "{ADMIN_KEY}"\nroom_secret = "{ROOM_SECRET}"\n'
        f'events_token = "{EVENTS}"\nempty_room_grace = 1.0\n' + COMPOSITE,
        port,  # chosen before Janus, which posts its events there
    )  # fmt: skip
    # its own data_dir (state, spool, outbox), the recordings and composites on the shared volume (the chart)
    shared = tmp_path / "shared"
    for name_ in ("recordings", "composites"):
        (shared / name_).mkdir(parents=True, exist_ok=True)
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / name_).symlink_to(shared / name_)
    return proc


def worker(tmp_path: Path, name: str, url: str) -> Proc:
    return _serve(
        tmp_path, name, url, 'roles = ["worker"]\n[janus]\nenabled = false\n' + COMPOSITE + JOBS,
        data_dir=tmp_path / "shared",
    )  # fmt: skip


async def wait_for(what: str, check: Callable[[], T | None], within: float) -> T:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def publish(janus: JanusServer, ns: NetNamespace, display: str, seconds: float) -> PublisherProcess:
    return await PublisherProcess.start(
        janus.ws_url,
        ROOM,
        display,
        codec="vp8",
        seconds=seconds,
        fps=15,
        ice_address=ns.address,
        netns=ns.name,
    )


def finished(api: Proc) -> list[dict[str, Any]] | None:
    status, page = api.get("/v1/recordings?status=finished&limit=50")
    return page["items"] if status == 200 else None


async def test_two_janus_two_recorders_one_api(
    netns_for_test: NetNamespace, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    ns, pg = netns_for_test, own_postgres
    url = pg.create_database()
    ports = {"rec-a": free_tcp_port(), "rec-b": free_tcp_port()}
    janus = {
        name: JanusServer(
            tmp_path / f"janus-{name}",
            ice_enforce_list=ns.interface,
            videocodec="vp8",
            sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token={EVENTS}",
        )
        for name, port in ports.items()
    }
    for server in janus.values():
        start_or_skip(server)
    recs = {name: recorder(tmp_path, name, url, janus[name], ports[name]) for name in ports}
    api = _serve(tmp_path, "api", url, 'roles = ["api"]\n[janus]\nenabled = false\n')
    workers = [worker(tmp_path, "w1", url), worker(tmp_path, "w2", url)]
    publishers: list[PublisherProcess] = []
    procs = [api, *recs.values(), *workers]
    try:
        for p in procs:
            p.start()
        fleet = await wait_for(
            "both recorders registered",
            lambda: (f := api.get("/v1/recorders"))[0] == 200 and f[1]["alive"] == 2 and f[1],
            90,
        )
        assert {r["node"]: r["sfu"] for r in fleet["recorders"]} == {n: janus[n].ws_url for n in ports}

        # a call on each Janus; PostgreSQL stopped while the first is recording, the second starts during
        # the outage: once PostgreSQL is back, its recorder writes it into the catalog while it goes on
        calls = {"rec-a": await publish(janus["rec-a"], ns, "agent-rec-a", 8.0)}
        publishers += calls.values()
        await calls["rec-a"].event("media", within=30)
        await asyncio.to_thread(pg.stop_server)
        calls["rec-b"] = await publish(janus["rec-b"], ns, "agent-rec-b", 14.0)
        publishers.append(calls["rec-b"])
        await calls["rec-b"].event("media", within=30)
        await asyncio.sleep(1.0)  # the recording started, its catalog writes failed
        await asyncio.to_thread(pg.run_server)

        def live_on_b() -> dict[str, Any] | None:
            status, page = api.get("/v1/recordings?status=recording&limit=50")
            for item in page["items"] if status == 200 else []:
                detail = api.get(f"/v1/recordings/{item['recording_id']}")[1]
                if detail["recorder"] == "rec-b":
                    return dict(detail)
            return None

        started_in_outage = await wait_for("the call started in the outage, catalogued", live_on_b, 30)
        assert calls["rec-b"].proc.returncode is None  # found while it is still going on
        for p in calls.values():
            await p.finish(within=60)
        items = await wait_for("both calls finished", lambda: (f := finished(api)) and len(f) == 2 and f, 60)
        by_recorder = {}
        for item in items:
            status, detail = api.get(f"/v1/recordings/{item['recording_id']}")
            assert status == 200 and detail["failure"] is None
            by_recorder[detail["recorder"]] = detail
        assert sorted(by_recorder) == ["rec-a", "rec-b"]
        assert by_recorder["rec-b"]["recording_id"] == started_in_outage["recording_id"]
        for name, detail in by_recorder.items():
            assert detail["room_id"] == str(ROOM) and f"_{name}-" in detail["recording_id"]
            assert detail["tracks"] >= 1 and detail["duration"] > 3
            assert detail["participants"] and detail["participants"][0]["display_name"] == f"agent-{name}"

        # composites built by whichever worker is free; the one building first is SIGKILLed mid-build
        shared = tmp_path / "shared"
        work = await wait_for(
            "a composite being built", lambda: next((shared / "composites" / "work").glob("*"), None), 60
        )
        builder = int(work.name.rsplit(".", 1)[1])
        victim = next(w for w in workers if w.proc is not None and w.proc.pid == builder)
        os.kill(builder, signal.SIGKILL)
        rid_killed = work.name.split(".", 1)[0]
        results = shared / "composites" / "results"

        def result(rid: str) -> dict[str, Any] | None:  # a worker's result of a job on the recording
            for path in results.glob(f"{rid}.*.json"):
                found = json.loads(path.read_text())
                if found.get("file"):
                    return dict(found)
            return None

        unbuilt = result(rid_killed) is None  # measured right after the kill: it died mid-build
        assert victim.proc is not None and victim.proc.wait(10) == -signal.SIGKILL
        for item in items:
            rid = item["recording_id"]
            done = await wait_for(f"composite of {rid}", lambda r=rid: result(r), 120)  # type: ignore[misc]
            staged = (
                shared / "recordings" / rid / done["staged"]
            )  # the recorder (no archive here) keeps it staged
            assert done["file"] == "composite-sd.mp4" and ffprobe_errors(staged) == ""
            if rid == rid_killed and unbuilt:  # built again by the other worker
                assert int(done["staged"].split(".")[-2]) != builder

        # a recorder SIGKILLed mid-call: the API node finds it silent and marks its recording failed
        caller = await publish(janus["rec-b"], ns, "agent-b2", 30.0)
        publishers.append(caller)
        await caller.event("media", within=30)
        live = await wait_for(
            "call 2 catalogued with bytes",
            lambda: next(
                (i for i in api.get("/v1/recordings?status=recording")[1]["items"] if i["bytes"] > 0), None
            ),
            30,
        )
        proc = recs["rec-b"].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        failed = await wait_for(
            "call 2 failed",
            lambda: (d := api.get(f"/v1/recordings/{live['recording_id']}")[1])["status"] == "failed" and d,
            DEAD_AFTER + 40,
        )
        assert failed["failure"]["recorder"] == "rec-b" and failed["failure"]["detected_by"] in {
            "api",
            "rec-a",
        }
        assert failed["failure"]["segments"], failed["failure"]
        status, fleet = api.get("/v1/recorders")
        assert {r["node"]: r["state"] for r in fleet["recorders"]} == {"rec-a": "alive", "rec-b": "dead"}
    finally:
        for pub in publishers:
            pub.kill()
        for p in procs:
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for p in procs:
            if p.proc is not None:
                try:
                    p.proc.wait(60)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
        for server in janus.values():
            server.stop()
