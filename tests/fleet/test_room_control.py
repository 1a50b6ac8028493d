"""Room control across a fleet with real `callvault serve` processes on a real PostgreSQL
(tests/fleet/fleet_kit.py): an API-only node, which follows no SFU, pauses and resumes a call recorded by a
recorder node (through the ingest API, real RTP from ffmpeg) — the recording shows the pause interval and
the packets dropped in it, the audit log names who paused it and from which API node — and stops the room
there, while another recorder's room with the same id is left alone (a stop must name the recorder); a
start reaches recorders without an SFU as a 409, as on one node; a recording or recorder it does not know
is 404; a recorder SIGKILLed mid-call answers nothing: the
command expires unexecuted with a 504 naming the room, and once the recorder is dead it is a 503 at once.
The API node lists the rooms as the recorders see them (GET /v1/rooms): room-7 once per recorder with its
participants and pause state, and the killed recorder's room as `dead`, never as live."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from media import encode_reference
from postgres_kit import PostgresServer
from serve_process import request

sys.path.insert(1, str(Path(__file__).parent))  # fleet_kit
from fleet_kit import DEAD_AFTER, KEY, Node, api_node, recorder_node, start_call, stop, wait_for

pytestmark = [pytest.mark.timeout(240)]
START = 60.0  # seconds a node may take to start on a loaded machine
COMMAND_TIMEOUT = 4.0


def _call(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request, waiting long enough for any bounded answer (the API's own timeouts decide)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    req = urllib.request.Request(node.base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10 * COMMAND_TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _recording(node: Node, rid: str) -> dict[str, Any]:
    status, out = _call(node, "GET", f"/v1/recordings/{rid}")
    assert status == 200, out
    return dict(out)


def _packets_paused(node: Node) -> float:
    """RTP packets the node dropped unread while paused (its /metrics)."""
    text = request(f"{node.base}/metrics")[1]
    found = [ln.split()[-1] for ln in text.splitlines() if ln.startswith("callvault_packets_paused_total ")]
    return float(found[0]) if found else 0.0


def test_pause_resume_and_stop_through_an_api_node_reach_the_recorder(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    reference = encode_reference("opus", tmp_path, seconds=30.0)
    rec = recorder_node(tmp_path, "rec-a", url).start()
    api = api_node(tmp_path, "api-1", url, COMMAND_TIMEOUT).start()
    other = recorder_node(tmp_path, "rec-b", url).start()  # another SFU's recorder, a room of the same id
    senders: list[subprocess.Popen[bytes] | None] = []
    try:
        for node in (rec, api, other):
            wait_for(f"{node.name} answers", node.answers, START)
        # an API-only node knows no SFU: an unknown recording or recorder is 404, as on a single node
        status, out = _call(api, "POST", "/v1/recordings/nobody-1/pause", {"reason": "card number"})
        assert status == 404 and "not in progress" in out["detail"], out
        status, out = _call(api, "POST", "/v1/rooms/room-7/stop?recorder=rec-zz")
        assert status == 404 and "no recorder rec-zz" in out["detail"], out

        rid, sender = start_call(rec, "room-7", "alice", reference, 7777)
        senders.append(sender)
        wait_for("recorded by rec-a", lambda: (r := _recording(api, rid))["bytes"] > 0 and r["recorder"], 30)
        rid_b, sender_b = start_call(other, "room-7", "bob", reference, 7778)
        senders.append(sender_b)
        wait_for("recorded by rec-b", lambda: _recording(api, rid_b)["recorder"] == "rec-b", 30)
        # the API node (no SFU) lists room-7 as each recorder sees it: its recording, its participant
        both = wait_for("room-7 of both recorders", lambda: _live(api, "room-7", 2), 30)
        assert [(r["recording_id"], r["recorder_state"], r["paused"]) for r in both.values()] == [
            (rid, "alive", False),
            (rid_b, "alive", False),
        ], both
        assert [[p["id"] for p in r["participants"]] for r in both.values()] == [["alice"], ["bob"]]
        status, one = _call(api, "GET", "/v1/rooms/room-7")  # one room: the first live recorder's
        assert status == 200 and (one["recorder"], one["recording_id"]) == ("rec-a", rid), one

        # pause through the API node: the recorder pauses at once (its own API says so) ...
        status, out = _call(api, "POST", f"/v1/recordings/{rid}/pause", {"reason": "card number"})
        assert status == 200 and out == {"recording_id": rid, "participant": None, "paused": True}, out
        status, room = _call(rec, "GET", "/v1/rooms/room-7")
        assert status == 200 and room["paused"] is True, room
        status, room = _call(other, "GET", "/v1/rooms/room-7")  # the other SFU's room-7: untouched
        assert status == 200 and room["paused"] is False and room["recording_id"] == rid_b, room
        seen = wait_for("the pause listed by the API node", lambda: _paused(api, "room-7", "rec-a"), 10)
        assert seen["participants"][0]["paused"] is True and not _live(api, "room-7", 2)["rec-b"]["paused"]
        paused = wait_for("the pause in the catalog", lambda: _recording(api, rid)["pauses"], 30)
        assert paused[0]["by"] == "bootstrap-admin" and paused[0]["reason"] == "card number"
        # ... while packets keep arriving (counted as dropped: nothing of them is written)
        wait_for(
            "packets dropped while paused",
            lambda: _packets_paused(rec) > 0,
            30,
        )
        status, out = _call(api, "POST", f"/v1/recordings/{rid}/resume")
        assert status == 200 and out["paused"] is False, out
        # one participant: paused on its recorder; one the recorder does not have is 404 there
        status, out = _call(api, "POST", f"/v1/recordings/{rid}/participants/alice/pause", {"reason": "card"})
        assert status == 200 and out["participant"] == "alice" and out["paused"] is True, out
        status, out = _call(api, "POST", f"/v1/recordings/{rid}/participants/alice/resume")
        assert status == 200 and out["paused"] is False, out
        status, out = _call(api, "POST", f"/v1/recordings/{rid}/participants/zed/pause", {"reason": "card"})
        assert status == 404 and out["detail"] == f"recording {rid} has no participant zed being recorded", (
            out
        )
        status, room = _call(rec, "GET", "/v1/rooms/room-7")
        assert room["paused"] is False, room

        # the audit log of the fleet: who paused what, from which API node, on which recorder
        status, audit = _call(api, "GET", "/v1/audit?action=recording.pause&limit=10")
        assert status == 200, audit
        [entry] = [e for e in audit["entries"] if e["target"] == rid]
        assert entry["actor"] == "bootstrap-admin" and entry["outcome"] == "ok"
        detail = entry["detail"]
        assert (detail["recorder"], detail["api_node"], detail["room"]) == ("rec-a", "api-1", "room-7")

        # starting a room: every live recorder is asked; these follow no SFU (ingest): the single node's 409
        status, out = _call(api, "POST", "/v1/rooms/room-9/start", {})
        assert status == 409 and out["type"].endswith("/no-sfu"), out
        assert "follows no SFU to start recording" in out["detail"] and "room room-9" in out["detail"]

        # room-7 on two SFUs: a stop must name the recorder; named, only that one stops
        status, out = _call(api, "POST", "/v1/rooms/room-7/stop")
        assert status == 409 and out["type"].endswith("/ambiguous-room"), out
        assert "room room-7 is recorded by recorders rec-a, rec-b" in out["detail"]
        status, out = _call(api, "POST", "/v1/rooms/room-7/stop?recorder=rec-a")
        assert status == 200 and out["recording"] is False, out
        sender.kill()
        done = wait_for(
            "finished",
            lambda: (r := _recording(api, rid))["status"] == "finished" and r["track_list"] and r,
            60,
        )
        [pause, alice] = done["pauses"]
        assert pause["start_time"] < pause["end_time"]  # the interval, closed by the resume
        assert pause["participant"] is None and alice["participant"] == "alice" and alice["end_time"]
        [track] = done["track_list"]
        assert track["packets_paused"] > 0 and track["bytes"] > 0  # nothing written in the pause
        still = _recording(api, rid_b)
        assert still["status"] == "recording" and not still["pauses"], still  # rec-b's room-7 goes on

        # a recorder killed mid-call: a command it never takes expires unexecuted (504), then 503
        rid2, sender2 = start_call(rec, "room-8", "bob", reference, 8888)
        senders.append(sender2)
        wait_for("call 2 recorded", lambda: (r := _recording(api, rid2))["bytes"] > 0 and r["recorder"], 30)
        assert rec.proc is not None
        rec.proc.send_signal(signal.SIGKILL)
        rec.proc.wait(10)
        started = time.monotonic()
        status, out = _call(api, "POST", f"/v1/recordings/{rid2}/pause", {"reason": "card number"})
        answered = time.monotonic() - started
        assert status == 504, out
        assert out["detail"] == (
            f"recorder rec-a did not take the command for room room-8 within {COMMAND_TIMEOUT:.0f} s:"
            " not executed"
        )
        assert out["type"].endswith("/recorder-timeout")
        assert answered >= COMMAND_TIMEOUT  # it waited its bounded time for the recorder, then answered
        wait_for("rec-a dead", lambda: _fleet_state(api, "rec-a") == "dead", DEAD_AFTER + 30)
        gone = _live(api, "room-8", 1)["rec-a"]  # what the dead recorder wrote last is not shown as live
        assert (gone["recorder_state"], gone["recording_id"], gone["participants"]) == ("dead", None, []), (
            gone
        )
        assert "room-7" not in {r["room_id"] for r in _rooms(api) if r["recorder"] == "rec-a"}  # stopped
        status, out = _call(api, "POST", "/v1/rooms/room-8/stop?recorder=rec-a")
        assert status == 503, out
        assert out["detail"].startswith("recorder rec-a, which has room room-8, is not alive"), out
    finally:
        stop([*senders, rec.proc, api.proc, other.proc])


def _rooms(node: Node) -> list[dict[str, Any]]:
    status, out = _call(node, "GET", "/v1/rooms")
    assert status == 200, out
    return list(out["rooms"])


def _live(node: Node, room: str, recorders: int) -> dict[str, dict[str, Any]]:
    """The node's entries of `room` by recorder, once `recorders` recorders list it with participants."""
    found = {r["recorder"]: r for r in _rooms(node) if r["room_id"] == room and r["recorder"]}
    ready = len(found) == recorders and all(
        r["participants"] or r["recorder_state"] != "alive" for r in found.values()
    )
    return found if ready else {}


def _paused(node: Node, room: str, recorder: str) -> dict[str, Any] | None:
    entry = _live(node, room, 2).get(recorder)
    return entry if entry is not None and entry["paused"] else None


def _fleet_state(node: Node, name: str) -> str | None:
    status, out = _call(node, "GET", "/v1/recorders")
    assert status == 200, out
    return next((r["state"] for r in out["recorders"] if r["node"] == name), None)
