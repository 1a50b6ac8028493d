"""`callvault serve` mounts the control API, its catalog sink and /metrics; per-participant pauses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from api_kit import ADMIN_KEY, Api, service_settings
from service_kit import free_tcp_port, until

from recorder.commands.serve import serve


async def test_serve_mounts_the_api(tmp_path: Path) -> None:
    port = free_tcp_port()
    settings = service_settings(tmp_path).model_copy(update={"http_port": port})
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(f"{base}/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(up, 20)
        async with http.get(f"{base}/v1/openapi.json") as r:
            assert r.status == 200 and (await r.json())["openapi"] == "3.1.0"
        async with http.get(f"{base}/v1/keys") as r:
            assert r.status == 401 and r.content_type == "application/problem+json"
        async with http.get(f"{base}/v1/keys", headers=headers) as r:
            assert r.status == 200
        async with http.get(f"{base}/metrics", headers=headers) as r:
            assert r.status == 200 and "callvault_active_streams 0.0" in await r.text()
        async with http.get(f"{base}/v1/status") as r:
            assert r.status == 401
        async with http.get(f"{base}/v1/status", headers=headers) as r:
            assert r.status == 200
    stop.set()
    await asyncio.wait_for(task, 30)
    assert (settings.data_dir / "catalog.sqlite3").is_file()


async def test_pause_one_participant(api: Api) -> None:
    assert api.sfu is not None
    await api.sfu.publish("r", "1", "Agent")
    await api.sfu.publish("r", "2", "Customer")
    (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
    status, state = await api.call(
        "POST", f"/v1/recordings/{rid}/participants/2/pause", role="operator", json={"reason": "card"}
    )
    assert status == 200 and state == {"recording_id": rid, "participant": "2", "paused": True}
    status, room = await api.call("GET", "/v1/rooms/r", role="operator")
    assert {p["id"]: p["paused"] for p in room["participants"]} == {"1": False, "2": True}
    assert room["paused"] is False
    status, _ = await api.call("POST", f"/v1/recordings/{rid}/participants/9/pause", json={"reason": "x"})
    assert status == 404
    status, _ = await api.call("POST", f"/v1/recordings/{rid}/participants/2/resume", role="operator")
    assert status == 200
    await api.call(
        "POST", f"/v1/recordings/{rid}/participants/1/pause", role="operator", json={"reason": "b"}
    )
    await api.call("POST", "/v1/rooms/r/stop", role="operator")  # finishes with participant 1 paused
    status, detail = await api.call("GET", f"/v1/recordings/{rid}", role="supervisor")
    pauses = [(p["participant"], p["by"], p["reason"], p["end_time"] is not None) for p in detail["pauses"]]
    assert pauses == [("2", "operator-1", "card", True), ("1", "operator-1", "b", True)]
    status, audit = await api.call("GET", "/v1/audit?action=recording.pause", role="auditor")
    assert [(e["target"], e["detail"]["reason"]) for e in audit["entries"]] == [
        (f"{rid}/2", "card"),
        (f"{rid}/9", "x"),
        (f"{rid}/1", "b"),
    ]
