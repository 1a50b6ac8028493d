"""The console's Live page on a fleet's API node in headless Chromium: real `callvault serve` processes on a
real PostgreSQL (tests/fleet/fleet_kit.py), an API-only node and two recorder nodes each recording a room
with the same id (two SFUs; real RTP from ffmpeg through their ingest API). The page shows the room once per
recorder ("on recorder rec-a") with that recorder's participant; a pause from rec-b's card pauses rec-b's
recording only; a stop from rec-a's card names its recorder (`?recorder=rec-a`, never a 409 ambiguous-room)
and finishes rec-a's recording while rec-b's goes on; the recording page names its recorder."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from media import encode_reference
from postgres_kit import PostgresServer

sys.path.insert(1, str(Path(__file__).parent.parent / "fleet"))  # fleet_kit
from fleet_kit import KEY, Node, api_node, recorder_node, start_call, stop, watch

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]
START = 60.0  # seconds a node may take to start on a loaded machine
ROOM = "room-7"
# No node is killed here: a node silent for a few seconds while three start at once (heartbeats stalled by
# the start-up of its peers on a loaded machine) must not be judged dead by them, which fleet_kit's short
# default would do; its rooms would then be listed as a dead recorder's, without participants.
DEAD_AFTER = 60.0


def _recording(node: Node, rid: str) -> dict[str, Any]:
    status, out = node.call("GET", f"/v1/recordings/{rid}")
    assert status == 200, out
    return dict(out)


def _listed(rooms: dict[str, Any]) -> bool:
    """Both recorders' ROOM in a GET /v1/rooms body, each with its participant."""
    return sum(r["room_id"] == ROOM and bool(r["participants"]) for r in rooms["rooms"]) == 2


async def test_live_rooms_of_two_recorders_with_a_recorder_picker(
    tmp_path: Path, postgres_server: PostgresServer, browser: Any
) -> None:
    url = postgres_server.create_database()
    reference = await asyncio.to_thread(encode_reference, "opus", tmp_path, 30.0)
    nodes = [recorder_node(tmp_path, n, url, dead_after=DEAD_AFTER).start() for n in ("rec-a", "rec-b")]
    api = api_node(tmp_path, "api-1", url, dead_after=DEAD_AFTER).start()
    senders: list[subprocess.Popen[bytes] | None] = []
    try:
        for node in (*nodes, api):
            await asyncio.to_thread(node.wait_answers, START)
        rid_a, sender = start_call(nodes[0], ROOM, "alice", reference, 7001)
        rid_b, sender_b = start_call(nodes[1], ROOM, "bob", reference, 7002)
        senders += [sender, sender_b]
        await asyncio.to_thread(watch, "both rooms listed", api, "/v1/rooms", _listed, 30)

        context = await browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        stops: list[str] = []
        page.on("request", lambda r: stops.append(r.url) if r.url.endswith(("/stop", "=rec-a")) else None)
        page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))  # "Stop recording ...?"
        await page.goto(api.base + "/console/")
        await page.fill("#key", KEY)
        await page.click("button[type=submit]")
        await page.wait_for_selector("#who-role")
        await page.goto(api.base + "/console/live")

        card_a = page.locator(f".room[data-room='{ROOM}'][data-recorder='rec-a']")
        card_b = page.locator(f".room[data-room='{ROOM}'][data-recorder='rec-b']")
        await card_a.locator("text=alice").wait_for()
        await card_b.locator("text=bob").wait_for()
        assert "on recorder rec-a" in await card_a.locator("h2").inner_text()
        assert "on recorder rec-b" in await card_b.locator("h2").inner_text()
        assert "bob" not in await card_a.inner_text() and "alice" not in await card_b.inner_text()

        # pause rec-b's room from its card: only rec-b's recording is paused
        await page.click(f"button[aria-label='Pause room {ROOM} on rec-b']")
        await page.fill("#pause-reason", "card number")
        await page.click("#pause-ok")
        await card_b.locator(".badge.status-paused").first.wait_for()
        pauses = await asyncio.to_thread(
            watch, "rec-b's pause in the catalog", api, f"/v1/recordings/{rid_b}", lambda r: r["pauses"], 30
        )
        assert pauses[0]["reason"] == "card number"
        assert not _recording(api, rid_a)["pauses"]

        # stop rec-a's room from its card: the console names the recorder (two have room-7)
        await page.click(f"button[aria-label='Stop recording room {ROOM} on rec-a']")
        await card_a.wait_for(state="detached")  # rec-a records it no more
        assert stops == [f"{api.base}/console/api/v1/rooms/{ROOM}/stop?recorder=rec-a"], stops
        done = await asyncio.to_thread(
            watch,
            "rec-a's recording finished",
            api,
            f"/v1/recordings/{rid_a}",
            lambda r: r["status"] == "finished",
            60,
        )
        assert done
        assert _recording(api, rid_b)["status"] == "paused"  # rec-b's room-7 goes on, still paused
        assert await card_b.count() == 1

        # the recording page says which recorder recorded it
        await page.goto(f"{api.base}/console/recordings/{rid_b}")
        await page.locator("#meta dd", has_text="rec-b").wait_for()
        assert errors == []
        await context.close()
    finally:
        stop([*senders, *(n.proc for n in nodes), api.proc])
