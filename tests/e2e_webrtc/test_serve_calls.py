"""`callvault serve` end to end, with nothing but Janus's own events telling it what to do: a real Janus
in a network namespace posts its events (sampleevh) to the service, two real aiortc publishers join one
room (VP8 for the whole call; H.264 joining late and leaving early), and the service records each of
them into its own files. Every file decodes, lasts as long as its publisher published (within 0.5 s),
and its frame counters run without duplicates or gaps."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from frame_marks import gaps, read_counters, read_marks
from janus_fixture import ROOM, JanusServer, start_or_skip
from media import ffprobe_errors, read_packets
from netns import NetNamespace
from service_kit import (
    client,
    free_tcp_port,
    get_json,
    janus_service_settings,
    wait_finished,
    wait_ready,
)
from webrtc import PublisherProcess

from recorder.commands.serve import serve

pytestmark = pytest.mark.slow


def janus_native_video(rec_dir: Path, out_dir: Path, publisher: int) -> Path | None:
    """Janus's own recording of a publisher's video (.mjr), post-processed by janus-pp-rec."""
    if shutil.which("janus-pp-rec") is None:
        pytest.skip("janus-pp-rec (Debian's janus-tools) is not installed")
    out_dir.mkdir(exist_ok=True)
    for mjr in sorted(rec_dir.glob(f"*{publisher}*video*.mjr")):
        out = out_dir / f"{mjr.stem}.{'webm' if 'vp8' in mjr.read_bytes()[:256].decode('latin-1') else 'mkv'}"
        subprocess.run(["janus-pp-rec", str(mjr), str(out)], capture_output=True, timeout=60, check=True)
        return out
    return None


FPS = 30
CALL = 6.0  # seconds the VP8 publisher publishes
LATE, SHORT = 1.5, 2.5  # the H.264 publisher starts this much later and publishes this long


async def test_service_records_two_publishers_from_janus_events(
    netns_for_test: NetNamespace, tmp_path: Path
) -> None:
    ns = netns_for_test
    port = free_tcp_port()
    janus = JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8,h264",
        sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evt",
        record=True,  # Janus records the same call natively, for comparison
    )
    start_or_skip(janus)
    settings = janus_service_settings(tmp_path, janus.ws_url, port, (42000, 42999))
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    publishers: list[PublisherProcess] = []
    try:
        async with client() as http:
            await wait_ready(http, base, 15)
            agent = await PublisherProcess.start(
                janus.ws_url,
                ROOM,
                "agent",
                codec="vp8",
                seconds=CALL,
                fps=FPS,
                ice_address=ns.address,
                netns=ns.name,
            )
            publishers.append(agent)
            await asyncio.sleep(LATE)
            customer = await PublisherProcess.start(
                janus.ws_url, ROOM, "customer", codec="h264", seconds=SHORT, fps=FPS, ice_address=ns.address,
                netns=ns.name,
            )  # fmt: skip
            publishers.append(customer)
            published = {p: await p.event("published") for p in publishers}
            sent = {p: await p.finish(within=CALL + 20) for p in publishers}

            await wait_finished(http, base, 15)
            status = (await get_json(http, f"{base}/v1/status"))[1]
    finally:
        for p in publishers:
            p.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()

    assert status["janus_bridge"]["errors"] == 0 and status["janus_events"]["unauthorized"] == 0
    (recording,) = status["finished"]
    assert recording["room"] == str(ROOM)
    folder = Path(recording["folder"])
    for publisher in publishers:
        event = published[publisher]
        mids = {s["type"]: s["mid"] for s in event["streams"]}
        video = json.loads((folder / f"{event['id']}-video-{mids['video']}.json").read_text())
        audio = json.loads((folder / f"{event['id']}-audio-{mids['audio']}.json").read_text())
        for track in (video, audio):
            assert track["state"] == "complete" and track["file"], track
            assert ffprobe_errors(folder / track["file"]) == ""
        counters = read_counters(folder / video["file"])
        assert counters == sorted(set(counters)) and gaps(counters) == [], gaps(counters)
        assert set(counters) <= set(sent[publisher]["counters"])
        published_seconds = sent[publisher]["frames"] / FPS
        recorded = read_packets(folder / video["file"]).duration + 1 / FPS
        assert abs(recorded - published_seconds) <= 0.5, (event.get("display"), recorded, published_seconds)
        assert video["packets_lost"] == 0
        # Janus's own recording of the same publisher (record: true, then janus-pp-rec): CallVault's
        # file holds at least as many frames.
        native = janus_native_video(janus.workdir / "rec", tmp_path / "pp", event["id"])
        assert native is not None and ffprobe_errors(native) == ""
        native_frames = len(read_marks(native))
        assert native_frames > FPS and len(counters) >= native_frames, (len(counters), native_frames)
