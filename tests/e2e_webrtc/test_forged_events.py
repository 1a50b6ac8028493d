"""Forged events in the middle of a real call (issue 10): someone who can post to the event endpoint
(a leaked token, a path that is not Janus's) sends `unpublished`, `leaving` and `destroyed` for a live
publisher and its room. Events are hints: Janus's API says the publisher is still publishing and the
room still exists, so the recording goes on and covers the whole call, frame for frame. Before the fix
each of those events finished the recording at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from frame_marks import gaps, read_counters
from janus_fixture import ROOM, JanusServer, start_or_skip
from media import ffprobe_errors, read_packets
from netns import NetNamespace
from service_kit import (
    client,
    free_tcp_port,
    get_json,
    janus_service_settings,
    until,
    wait_finished,
    wait_ready,
)
from webrtc import PublisherProcess

from recorder.commands.serve import serve

pytestmark = pytest.mark.slow

FPS = 30
CALL = 5.0


def forged(name: str, publisher: int | None = None) -> list[dict[str, object]]:
    data: dict[str, object] = {"event": name, "room": ROOM}
    if publisher is not None:
        data["id"] = publisher
    return [{"type": 64, "timestamp": 1, "event": {"plugin": "janus.plugin.videoroom", "data": data}}]


async def test_forged_leave_and_destroy_do_not_end_a_live_recording(
    netns_for_test: NetNamespace, tmp_path: Path
) -> None:
    ns = netns_for_test
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
            publisher = await PublisherProcess.start(
                janus.ws_url, ROOM, "agent", codec="vp8", seconds=CALL, fps=FPS, ice_address=ns.address,
                netns=ns.name,
            )  # fmt: skip
            published = await publisher.event("published")
            at = asyncio.get_running_loop().time()

            async def forwarded() -> bool:
                status = (await get_json(http, f"{base}/v1/status"))[1]
                return bool(status["janus_bridge"]["forwarded_publishers"] == 1)

            # The bridge records the publisher (Janus's `published` reached it through sampleevh's batches,
            # and its rtp_forward is answered): forged events before that would find nothing to ignore.
            await until(forwarded, 20)
            await asyncio.sleep(max(0.0, at + 1.0 - asyncio.get_running_loop().time()))  # media flows
            async with aiohttp.ClientSession() as attacker:
                for body in (forged("unpublished", published["id"]), forged("leaving", published["id"]),
                             forged("destroyed")):  # fmt: skip
                    async with attacker.post(f"{base}/janus/events?token=evt", json=body) as r:
                        assert r.status == 200
            sent = await publisher.finish(within=CALL + 20)
            await wait_finished(http, base, 20)
            status = (await get_json(http, f"{base}/v1/status"))[1]
    finally:
        if publisher is not None:
            publisher.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()

    assert status["janus_bridge"]["unconfirmed_events"] == 3, status["janus_bridge"]
    (recording,) = status["finished"]
    folder = Path(recording["folder"])
    mid = next(s["mid"] for s in published["streams"] if s["type"] == "video")
    video = json.loads((folder / f"{published['id']}-video-{mid}.json").read_text())
    assert video["state"] == "complete" and ffprobe_errors(folder / video["file"]) == ""
    counters = read_counters(folder / video["file"])
    assert gaps(counters) == [] and set(counters) <= set(sent["counters"])
    recorded = read_packets(folder / video["file"]).duration + 1 / FPS
    assert abs(recorded - sent["frames"] / FPS) <= 0.5, (recorded, sent["frames"] / FPS)
