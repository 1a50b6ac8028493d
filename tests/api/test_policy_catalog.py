"""Policy taking effect at once on running rooms, start/stop on demand, metadata and call ids, and the
catalog's search (room, participant, tag, call id, status, time range, duration, pagination)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from api_kit import Api, ApiFactory
from postgres_kit import BACKENDS

pytestmark = BACKENDS  # each test on the SQLite catalog and on PostgreSQL


async def test_policy_metadata_and_search(make_api: ApiFactory) -> None:
    api: Api = await make_api()
    sfu, manager = api.sfu, api.manager
    assert sfu is not None
    before = datetime.now(UTC).isoformat()
    await sfu.publish("r1", "p1", "Alice")
    await sfu.publish("r2", "p2", "Bob")
    assert set(manager.rooms) == {"r1", "r2"}  # default 'all' (from janus.record_rooms)

    status, policy = await api.call("PUT", "/v1/policy", role="operator", json={"default": "enabled"})
    assert status == 200 and policy["default"] == "enabled"
    assert manager.rooms == {}  # both stopped at once
    first = {i.room_id: i.recording_id for i in manager.finished}

    status, room = await api.call(
        "PUT", "/v1/rooms/r1/policy", role="operator", json={"record": True, "metadata": {"queue": "billing"}}
    )
    assert status == 200 and room["recording"] and room["recording_id"]
    r1 = manager.rooms["r1"].info
    assert r1.metadata["queue"] == "billing" and room["participants"][0]["display_name"] == "Alice"
    status, room = await api.call(
        "POST", "/v1/rooms/r2/start", role="operator", json={"call_id": "call-9", "metadata": {"case": "c-1"}}
    )
    assert status == 200 and room["recording"]
    r2 = manager.rooms["r2"].info
    assert r2.call_id == "call-9" and r2.metadata == {"case": "c-1", "outputs": "tracks"}

    # Tags and call id on a running recording and its participant, later.
    status, detail = await api.call(
        "PATCH",
        f"/v1/recordings/{r1.recording_id}",
        role="operator",
        json={"call_id": "call-9", "metadata": {"agent": "a-7", "queue": None}},
    )
    tags = {"agent": "a-7", "outputs": "tracks"}
    assert status == 200 and detail["metadata"] == tags and detail["call_id"] == "call-9"
    assert r1.metadata == tags and r1.call_id == "call-9"
    status, detail = await api.call(
        "PATCH", f"/v1/recordings/{r1.recording_id}/participants/p1", role="operator",
        json={"metadata": {"customer": "cust-3"}},
    )  # fmt: skip
    assert status == 200 and detail["participants"][0]["metadata"] == {"customer": "cust-3"}
    assert r1.participants[0].metadata == {"customer": "cust-3"}
    status, _ = await api.call(
        "PATCH", f"/v1/recordings/{r1.recording_id}/participants/nobody", role="operator", json={}
    )
    assert status == 404

    status, rooms = await api.call("GET", "/v1/rooms", role="supervisor")
    assert {r["room_id"]: r["recording"] for r in rooms["rooms"]} == {"r1": True, "r2": True}
    await sfu.publish("r3", "p3", "Carol")  # not enabled: not recorded
    assert "r3" not in manager.rooms
    status, room = await api.call("GET", "/v1/rooms/r3", role="operator")
    assert status == 200 and room["recording"] is False and room["recording_id"] is None

    # A live search sees the running recordings and their participants.
    status, page = await api.call("GET", "/v1/recordings?status=recording", role="supervisor")
    assert {i["recording_id"] for i in page["items"]} == {r1.recording_id, r2.recording_id}
    status, page = await api.call("GET", "/v1/recordings?participant=Alice", role="supervisor")
    assert {i["recording_id"] for i in page["items"]} == {first["r1"], r1.recording_id}

    await asyncio.sleep(0.05)
    for room_id in ("r1", "r2"):
        status, _ = await api.call("POST", f"/v1/rooms/{room_id}/stop", role="operator")
        assert status == 200
    assert manager.rooms == {}

    async def ids(query: str) -> list[str]:
        status, page = await api.call("GET", "/v1/recordings?" + query, role="supervisor")
        assert status == 200, page
        return [i["recording_id"] for i in page["items"]]

    assert set(await ids("call_id=call-9")) == {r1.recording_id, r2.recording_id}  # a transferred call
    assert await ids("tag=agent:a-7") == [r1.recording_id]
    assert await ids("tag=customer:cust-3") == [r1.recording_id]  # participant tags too
    assert await ids("tag=case&tag=agent") == []  # AND
    assert set(await ids("room=r1")) == {first["r1"], r1.recording_id}
    assert set(await ids("participant=p2")) == {first["r2"], r2.recording_id}
    assert len(await ids("status=finished")) == 4 and await ids("status=recording") == []
    assert len(await ids(f"started_after={before.replace('+', '%2B')}")) == 4
    assert await ids("started_before=2001-01-01T00:00:00Z") == []
    # Duration filters, at a threshold between the recordings' own durations (how long each lasted
    # depends on the machine's load, not on the test).
    durations = {}
    for rid in (first["r1"], first["r2"], r1.recording_id, r2.recording_id):
        status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
        durations[rid] = detail["duration"]
    low, high = sorted(durations.values())[1:3]
    assert high > low, durations
    threshold = (low + high) / 2
    longer = {rid for rid, d in durations.items() if d >= threshold}
    assert set(await ids(f"min_duration={threshold}")) == longer and len(longer) == 2
    assert set(await ids(f"max_duration={threshold}")) == set(durations) - longer
    seen, offset = [], 0
    while offset is not None:
        status, page = await api.call("GET", f"/v1/recordings?limit=3&offset={offset}", role="supervisor")
        assert page["total"] == 4 and page["limit"] == 3
        seen += [i["recording_id"] for i in page["items"]]
        offset = page["next_offset"]
    assert len(seen) == 4 and len(set(seen)) == 4

    status, detail = await api.call("GET", f"/v1/recordings/{r1.recording_id}", role="supervisor")
    assert status == 200 and detail["status"] == "finished" and detail["duration"] > 0
    assert detail["metadata"] == {"agent": "a-7", "outputs": "tracks"}
    assert detail["participants"][0]["left_at"] is not None and detail["manifest"] is None
    assert detail["track_list"][0]["participant"] == "p1" and detail["tracks"] == 1


async def test_policy_survives_a_restart_and_defaults(make_api: ApiFactory) -> None:
    api: Api = await make_api()
    await api.call("PUT", "/v1/policy", role="operator", json={"default": "enabled"})
    await api.call(
        "PUT", "/v1/rooms/7/policy", role="operator", json={"record": False, "outputs": ["composite"]}
    )
    again: Api = await make_api()  # same data folder: the catalog keeps the policy
    status, policy = await again.call("GET", "/v1/policy", role="operator")
    assert status == 200 and policy["default"] == "enabled"
    assert policy["rooms"]["7"] == {
        "record": False,
        "outputs": ["composite"],
        "metadata": {},
        "capture": None,
        "encryption_recipients": None,
        "transcribe": None,
        "redact": None,
    }


async def test_errors_are_problems_naming_the_field(api: Api) -> None:
    status, p = await api.call("GET", "/v1/recordings?limit=0", role="supervisor")
    assert status == 422 and p["detail"].startswith("query.limit:")
    assert p["invalid-params"][0]["name"] == "query.limit" and p["instance"] == "/v1/recordings"
    status, p = await api.call("PUT", "/v1/policy", role="operator", json={"default": "sometimes"})
    assert status == 422 and p["invalid-params"][0]["name"] == "body.default"
    status, p = await api.call("PUT", "/v1/rooms/x/policy", role="operator", json={"metadata": {"k": 5}})
    assert status == 422 and p["invalid-params"][0]["name"] == "body.metadata.k"
    status, p = await api.call("GET", "/v1/recordings?colour=red", role="supervisor")
    assert status == 422 and p["invalid-params"][0]["name"] == "query.colour"
    status, p = await api.call(
        "PUT", "/v1/policy", role="operator", data=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and p["type"].endswith("/malformed-body")
    status, p = await api.call("GET", "/v1/rooms/bad%20room", role="operator")
    assert status == 422 and p["detail"].startswith("path.room_id")
    status, p = await api.call("GET", "/v1/nothing-here", role="supervisor")
    assert status == 404 and p["title"] == "Not found"
    status, p = await api.call("POST", "/v1/recordings/nope/pause", role="operator", json={"reason": "pci"})
    assert status == 404 and "not in progress" in p["detail"]
    status, p = await api.call("POST", "/v1/recordings/nope/pause", role="operator", json={})
    assert status == 422 and p["invalid-params"][0]["name"] == "body.reason"
