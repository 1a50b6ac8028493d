"""Two CallVault nodes (each its own data folder, SFU and control API) on one PostgreSQL catalog, as a fleet
runs them behind one Service: a call recorded on one node is found through the other's search; a key
created or revoked through one is honoured by the other within the key mirror's refresh; both nodes'
audit entries form one chain."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).parents[1] / "api"))  # api_kit (appended: "conftest" stays ours)

from api_kit import Api, served_api, service_settings

from recorder.api.auth import SHARED_REFRESH_SECONDS

pytestmark = pytest.mark.parametrize("catalog_backend", ["postgresql"], indirect=True)

WAIT = 60.0  # generous: a refresh is due every SHARED_REFRESH_SECONDS


@pytest.fixture
async def nodes(tmp_path: Path, catalog_url: str) -> AsyncIterator[tuple[Api, Api]]:
    settings = [service_settings(tmp_path / name, catalog_url=catalog_url) for name in ("node-a", "node-b")]
    async with served_api(settings[0], roles=()) as a, served_api(settings[1], roles=()) as b:
        yield a, b


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Seconds until `check()` holds (polled), failing after WAIT."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < WAIT, what
        await asyncio.sleep(0.1)
    return time.monotonic() - start


async def test_one_catalog_for_two_nodes(nodes: tuple[Api, Api]) -> None:
    a, b = nodes
    assert a.sfu is not None and b.sfu is not None
    await a.sfu.publish("room-a", "alice", "Alice")
    await b.sfu.publish("room-b", "bob", "Bob")
    await a.manager.finish_room("room-a")
    await b.manager.finish_room("room-b")

    status, created = await a.call("POST", "/v1/keys", json={"name": "sup-1", "role": "supervisor"})
    assert status == 201
    a.keys["supervisor"] = b.keys["supervisor"] = created["key"]

    async def b_knows() -> bool:
        return (await b.call("GET", "/v1/recordings", role="supervisor"))[0] == 200

    await _until(b_knows, "node b never accepted a key created through node a")
    for node in (a, b):  # each node finds both calls, whoever recorded them
        status, page = await node.call("GET", "/v1/recordings?participant=Alice", role="supervisor")
        assert status == 200 and [i["room_id"] for i in page["items"]] == ["room-a"]
        status, page = await node.call("GET", "/v1/recordings?participant=Bob", role="supervisor")
        assert status == 200 and [i["room_id"] for i in page["items"]] == ["room-b"]
        status, page = await node.call("GET", "/v1/recordings?status=finished", role="supervisor")
        assert page["total"] == 2

    status, _ = await b.call("DELETE", f"/v1/keys/{created['key_id']}")
    assert status == 200

    async def a_refuses() -> bool:
        return (await a.call("GET", "/v1/recordings", role="supervisor"))[0] == 401

    took = await _until(a_refuses, "node a still accepts a key revoked through node b")
    assert took < SHARED_REFRESH_SECONDS * 10  # bounded by the refresh, with room for a loaded machine

    status, verified = await a.call("GET", "/v1/audit/verify", role="admin")
    assert status == 200 and verified["ok"] and verified["entries"] >= 2, verified
    status, log = await b.call("GET", "/v1/audit?action=key.revoke", role="admin")
    assert status == 200 and [e["target"] for e in log["entries"]] == [created["key_id"]], log


async def test_a_policy_set_through_one_node_is_applied_by_the_other(nodes: tuple[Api, Api]) -> None:
    a, b = nodes
    assert b.sfu is not None
    await b.sfu.publish("room-b", "bob", "Bob")  # node b follows the SFU where room-b lives
    assert "room-b" in b.manager.rooms

    status, _ = await a.call("PUT", "/v1/rooms/room-b/policy", role="admin", json={"record": False})
    assert status == 200

    async def b_stopped() -> bool:
        return "room-b" not in b.manager.rooms

    await _until(b_stopped, "node b kept recording a room switched off through node a")
    status, policy = await b.call("GET", "/v1/policy", role="admin")
    assert status == 200 and policy["rooms"]["room-b"]["record"] is False

    status, _ = await a.call("PUT", "/v1/rooms/room-b/policy", role="admin", json={"record": True})
    assert status == 200

    async def b_records() -> bool:
        return "room-b" in b.manager.rooms

    await _until(b_records, "node b did not record a room switched on through node a")
