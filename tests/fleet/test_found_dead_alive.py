"""A recorder found dead while it was alive, with real `callvault serve` processes on a real PostgreSQL
(tests/fleet/fleet_kit.py): rec-a, recording a call, is stopped (SIGSTOP) for longer than
fleet.dead_after_seconds; its peer rec-b marks it dead and its recording failed. Continued (SIGCONT), rec-a
is alive again at its next heartbeat: listed alive, its room with its participant again in rec-b's GET
/v1/rooms, its recording `recording` again with the mark lifted (`recording.recovered`), still growing, and
its log warns. Stopped again, and this time another run takes its node name meanwhile: continued, rec-a
exits at once (status 3) without writing the recording again; the name stays the other run's."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from media import encode_reference
from postgres_kit import PostgresServer

sys.path.insert(1, str(Path(__file__).parent))  # fleet_kit
from fleet_kit import DEAD_AFTER, Node, recorder_node, start_call, stop, wait_for, watch

pytestmark = [pytest.mark.timeout(300)]
START = 60.0  # seconds a node may take to start on a loaded machine
ROOM = "room-1"


def _get(node: Node, path: str) -> dict[str, Any]:
    status, out = node.call("GET", path)
    assert status == 200, out
    return dict(out)


def _state(node: Node, name: str) -> str | None:
    return next((r["state"] for r in _get(node, "/v1/recorders")["recorders"] if r["node"] == name), None)


def _participants(node: Node, recorder: str) -> list[str]:
    """The participants `node` lists in ROOM on `recorder` (GET /v1/rooms)."""
    rooms = _get(node, "/v1/rooms")["rooms"]
    return [
        p["id"] for r in rooms if (r["room_id"], r["recorder"]) == (ROOM, recorder) for p in r["participants"]
    ]


def _audited(node: Node, action: str, rid: str) -> int:
    return [e["target"] for e in _get(node, f"/v1/audit?action={action}&limit=200")["entries"]].count(rid)


def test_a_recorder_found_dead_while_alive(tmp_path: Path, postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    reference = encode_reference("opus", tmp_path, seconds=90.0)
    a = recorder_node(tmp_path, "rec-a", url).start()
    b = recorder_node(tmp_path, "rec-b", url).start()
    twin = recorder_node(tmp_path, "twin", url, node_name="rec-a")  # another data_dir, rec-a's name
    senders = []
    try:
        for node in (a, b):
            node.wait_answers(START)
        rid, sender = start_call(a, ROOM, "alice", reference, 1111)
        senders.append(sender)
        wait_for("alice listed on rec-a", lambda: _participants(b, "rec-a") == ["alice"], 30)
        call = f"/v1/recordings/{rid}"
        watch("segments of the call in the catalog", b, call, lambda r: r["bytes"] > 0, 30)
        assert a.proc is not None

        # 1. paused past dead_after: its peer finds it dead and marks its recording failed
        a.proc.send_signal(signal.SIGSTOP)
        failed = watch(
            "the call failed by rec-b", b, call, lambda r: r["status"] == "failed" and r, DEAD_AFTER + 30
        )
        assert failed["failure"]["detected_by"] == "rec-b"
        assert _state(b, "rec-a") == "dead" and _participants(b, "rec-a") == []

        # 2. continued: alive again at its next heartbeat, its room and recording its own again
        a.proc.send_signal(signal.SIGCONT)
        wait_for("rec-a alive again", lambda: _state(b, "rec-a") == "alive", 30)
        wait_for("alice listed on rec-a again", lambda: _participants(b, "rec-a") == ["alice"], 30)
        back = watch(  # the status first, then the mark lifted with its audit entry (one transaction)
            "the call recording again",
            b,
            call,
            lambda r: r["status"] == "recording" and not r["failure"] and r,
            30,
        )
        assert back["recorder"] == "rec-a"
        recovered = _audited(b, "recording.recovered", rid)
        assert recovered >= 1  # more than once if this loaded machine starved rec-a past dead_after again
        watch("the call still growing", b, call, lambda r: r["bytes"] > back["bytes"], 30)
        revived = [ln for ln in a.output().splitlines() if "rec-a was found dead by a peer" in ln]
        assert revived and all(" WARNING recorder.fleet.node: " in ln for ln in revived)

        # 3. paused again, and another run takes rec-a's name meanwhile: continued, rec-a exits at once
        a.proc.send_signal(signal.SIGSTOP)
        watch("the call failed again", b, call, lambda r: r["status"] == "failed", DEAD_AFTER + 30)
        twin.start()
        twin.wait_answers(START)
        assert _state(b, "rec-a") == "alive"  # the twin's run
        a.proc.send_signal(signal.SIGCONT)
        assert a.proc.wait(30) == 3
        [fenced] = [ln for ln in a.output().splitlines() if "node name rec-a was taken by another run" in ln]
        assert " CRITICAL recorder.fleet.node: " in fenced
        assert _get(b, call)["status"] == "failed"  # rec-a wrote nothing more of it
        assert _audited(b, "recording.recovered", rid) == recovered
        assert _state(b, "rec-a") == "alive"
    finally:
        stop([*senders, a.proc, b.proc, twin.proc])
