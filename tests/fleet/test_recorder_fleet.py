"""The recorder fleet with real `callvault serve` processes on a real PostgreSQL (tests/fleet/fleet_kit.py),
in one test (each node start costs seconds): recorders register and send heartbeats (GET /v1/recorders,
/metrics), a second recorder with a name in use refuses to start; a recorder SIGKILLed mid-call and
restarted in time finishes its recording itself; one that stays dead has its recording marked failed by a
peer with the segments recovered listed (catalog entry, audit entry, recording.failed webhook), and its
later restart still finishes it (the recorder's recovery wins over the peer's mark); a clean stop shows
`stopped`."""

from __future__ import annotations

import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from media import encode_reference
from postgres_kit import PostgresServer
from serve_process import request

from recorder.webhooks import generate_secret

sys.path.insert(1, str(Path(__file__).parent))  # fleet_kit
from fleet_kit import DEAD_AFTER, Hooks, Node, recorder_node, start_call, stop, wait_for

pytestmark = [pytest.mark.timeout(240)]
START = 60.0  # seconds a node may take to start on a loaded machine


def _fleet(node: Node) -> dict[str, Any]:
    status, out = node.call("GET", "/v1/recorders")
    assert status == 200, out
    return {r["node"]: r for r in out["recorders"]}


def _metric(node: Node, name: str) -> str | None:
    text = request(f"{node.base}/metrics")[1]
    return next((ln.split()[-1] for ln in text.splitlines() if ln.startswith(f"{name} ")), None)


def _recording(node: Node, rid: str) -> dict[str, Any]:
    status, out = node.call("GET", f"/v1/recordings/{rid}")
    assert status == 200, out
    return dict(out)


def _audit(node: Node, action: str) -> list[str]:
    status, out = node.call("GET", f"/v1/audit?action={action}&limit=200")
    assert status == 200, out
    return [e["target"] for e in out["entries"]]


def test_recorder_fleet(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    reference = encode_reference("opus", tmp_path, seconds=15.0)
    hooks = Hooks()  # rec-b's webhooks (its archive): the recording.failed it finds
    a = recorder_node(tmp_path, "rec-a", url)
    b = recorder_node(tmp_path, "rec-b", url, extra=hooks.archive(generate_secret()))
    twin = recorder_node(tmp_path, "twin", url, node_name="rec-a")
    a.start(), b.start()
    senders = []
    try:
        for node in (a, b):
            wait_for(f"{node.name} answers", node.answers, START)

        # 0. both registered and beating; a second recorder named rec-a (its own data_dir) is refused
        fleet = wait_for("both registered", lambda: len(f := _fleet(b)) == 2 and f, 30)
        assert {n: (r["state"], r["sfu"], r["version"]) for n, r in fleet.items()} == {
            "rec-a": ("alive", "ingest", "0.1.0"),
            "rec-b": ("alive", "ingest", "0.1.0"),
        }
        a_conf = a.config.read_text()
        assert f"rtp_port_min = {fleet['rec-a']['rtp_port_min']}\n" in a_conf
        assert f"rtp_port_max = {fleet['rec-a']['rtp_port_max']}\n" in a_conf
        first = datetime.fromisoformat(fleet["rec-a"]["heartbeat_at"])
        wait_for(
            "a later heartbeat",
            lambda: datetime.fromisoformat(_fleet(b)["rec-a"]["heartbeat_at"]) > first,
            30,
        )
        assert wait_for("alive 2 in metrics", lambda: _metric(a, "callvault_recorders_alive") == "2.0", 30)
        assert _metric(a, "callvault_recorders_dead") == "0.0"
        twin.start()
        assert twin.proc is not None and twin.proc.wait(START) == 2
        assert "recorder node name 'rec-a' is in use by a running recorder" in twin.output()
        assert _fleet(b)["rec-a"]["state"] == "alive"  # the running one keeps its name

        # 1. killed mid-call, restarted at once: its own restart finishes the recording
        rid1, sender = start_call(a, "room-1", "alice", reference, 1111)
        senders.append(sender)
        assert "_rec-a-" in rid1  # ids carry the node name: unique across the fleet
        wait_for("segments of call 1", lambda: _recording(b, rid1)["bytes"] > 0, 30)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        killed = time.monotonic()
        sender.kill()
        a.start()
        wait_for("rec-a back", a.answers, START)
        back = time.monotonic() - killed
        done = wait_for(
            "call 1 finished by rec-a",
            lambda: (r := _recording(b, rid1))["status"] == "finished" and r["failure"] is None and r,
            60,
        )
        assert done["failure"] is None and done["recorder"] == "rec-a"
        assert done["tracks"] == 1 and done["bytes"] > 0
        if back < DEAD_AFTER:  # back in time (measured): no peer ever marked it
            assert rid1 not in _audit(b, "recording.failed")

        # 2. killed mid-call and not restarted: the peer marks it failed with what was recovered
        rid2, sender = start_call(a, "room-2", "bob", reference, 2222)
        senders.append(sender)
        wait_for("segments of call 2", lambda: _recording(b, rid2)["bytes"] > 0, 30)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(10)
        sender.kill()
        failed = wait_for(
            "call 2 failed by rec-b",
            lambda: (r := _recording(b, rid2))["status"] == "failed" and r,
            DEAD_AFTER + 30,
        )
        failure = failed["failure"]
        assert failure["recorder"] == "rec-a" and failure["detected_by"] == "rec-b"
        assert "went silent" in failure["reason"]
        segments = failure["segments"]
        assert segments and all(s["track"] == "bob-audio-1" for s in segments)
        folder = a.data_dir / "recordings" / rid2
        for s in segments:  # each listed segment is on rec-a's disk, whole
            assert (folder / s["path"]).stat().st_size == s["size"]
        assert rid2 in _audit(b, "recording.failed")
        hook = wait_for("recording.failed webhook", lambda: hooks.of("recording.failed", rid2), 30)["data"]
        assert hook["stage"] == "recorder" and f"{len(segments)} segments recovered" in hook["error"]
        assert segments[0]["path"] in hook["error"]
        assert _fleet(b)["rec-a"]["state"] == "dead"
        assert wait_for("dead 1 in metrics", lambda: _metric(b, "callvault_recorders_dead") == "1.0", 30)
        assert rid1 not in _audit(b, "recording.failed") or back >= DEAD_AFTER

        # 3. rec-a comes back late: its recovery still finishes call 2 and lifts the peer's mark
        a.start()
        wait_for("rec-a back again", a.answers, START)
        done = wait_for(
            "call 2 finished by rec-a",
            lambda: (r := _recording(b, rid2))["status"] == "finished" and r["failure"] is None and r,
            60,
        )
        assert done["failure"] is None
        assert rid2 in _audit(b, "recording.recovered")
        assert _fleet(b)["rec-a"]["state"] == "alive"

        # 4. a clean stop: stopped, not dead
        stop([a.proc])
        assert _fleet(b)["rec-a"]["state"] == "stopped"
    finally:
        stop([*senders, a.proc, b.proc, twin.proc])
        hooks.close()
