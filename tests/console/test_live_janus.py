"""The live view during a real call: `callvault serve` following Debian's Janus (in the test's network
namespace, ICE enforced) records an aiortc publisher; an operator in headless Chromium sees the room, the
participant and the track's figures move, pauses the room with a reason and resumes it, and the
recording's pauses hold who and why."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(1, str(Path(__file__).parent))
from console_kit import chromium, until
from janus_fixture import ROOM, JanusServer, start_or_skip
from netns import NetNamespace, network_namespace
from service_kit import API_KEY, client, free_tcp_port, janus_service_settings, wait_ready
from webrtc import PublisherProcess

from recorder.commands.serve import serve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def namespace() -> Iterator[NetNamespace]:
    with network_namespace() as ns, ns.entered():
        yield ns


async def test_operator_pauses_a_real_janus_call(namespace: NetNamespace, tmp_path: Path) -> None:
    ns = namespace
    port = free_tcp_port()
    janus = JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8",
        sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evt",
    )
    start_or_skip(janus)
    settings = janus_service_settings(tmp_path, janus.ws_url, port, (43000, 43999))
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    publisher: PublisherProcess | None = None
    try:
        async with client() as http:
            await wait_ready(http, base, 15)
            async with http.post(
                f"{base}/v1/keys", json={"name": "operator-1", "role": "operator"}, headers=HEADERS
            ) as r:
                key = (await r.json())["key"]
            # long enough to outlast Chromium's start and the clicks on a loaded machine (killed at the end):
            # a call over before the pause leaves no room to pause
            publisher = await PublisherProcess.start(
                janus.ws_url, ROOM, "agent", codec="vp8", seconds=90, fps=15,
                ice_address=ns.address, netns=ns.name,
            )  # fmt: skip
            await publisher.event("published")
            room = str(ROOM)

            async def rooms() -> dict[str, Any]:
                async with http.get(f"{base}/v1/rooms/{room}", headers=HEADERS) as r:
                    return dict(await r.json())

            async def recording() -> bool:
                return bool((await rooms()).get("recording_id"))

            await until(recording, 15, "the room recorded")
            async with chromium() as browser:
                page = await browser.new_page()
                await page.goto(f"{base}/console/")
                await page.fill("#key", key)
                await page.click("button[type=submit]")
                await page.wait_for_url("**/console/live")
                pause = f"button[aria-label='Pause room {room}']"
                await page.wait_for_selector(pause)
                card = page.locator(f".room[data-room='{room}']")
                await page.wait_for_function(
                    "() => [...document.querySelectorAll('.room tbody td:nth-child(4)')]"
                    ".some(td => parseFloat(td.textContent) > 0)",
                    timeout=15_000,
                )  # packets per second of the live track
                assert "agent" in await card.inner_text()
                await page.click(pause)
                await page.fill("#pause-reason", "card number read out")
                await page.click("#pause-ok")
                await page.wait_for_selector(f"button[aria-label='Resume room {room}']")
                assert (await rooms())["paused"] is True
                await page.click(f"button[aria-label='Resume room {room}']")
                await page.wait_for_selector(pause)
                assert (await rooms())["paused"] is False
                rid = (await rooms())["recording_id"]
            async with http.get(f"{base}/v1/recordings/{rid}", headers=HEADERS) as r:
                detail = await r.json()
            (held,) = detail["pauses"]
            assert (
                held["by"] == "operator-1" and held["reason"] == "card number read out" and held["end_time"]
            )
    finally:
        if publisher is not None:
            publisher.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()
