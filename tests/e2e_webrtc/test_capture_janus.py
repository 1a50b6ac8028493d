"""Forensic RAW on a real call (issue 18 items 1 and 2): a real Janus 1.1.2 in a network namespace, a real
aiortc publisher (VP8 + Opus), and `callvault serve` with capture turned on by the room's policy (the
API). Every track gets pcapng capture segments, hashed into the signed manifest like the media, each
naming the Janus forwarder (stream id) its packets came from, and
`callvault record-pcap` rebuilds from them alone the live recording's frames, bit for bit, with the same
timestamps."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from janus_fixture import ROOM, JanusServer, start_or_skip
from media import ffprobe_errors, read_packets
from netns import NetNamespace
from service_kit import client, free_tcp_port, janus_service_settings, wait_finished, wait_ready
from webrtc import PublisherProcess

from recorder.archive.settings import ArchiveSettings
from recorder.capture.reader import parse
from recorder.commands.serve import serve

pytestmark = pytest.mark.slow

FPS = 30
CALL = 5.0


async def test_a_janus_call_rebuilt_from_its_captures_is_bit_identical(
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
    archive = ArchiveSettings.model_validate(
        {"storage": {"backend": "local"}, "delete_local_after_upload": False}
    )
    settings = janus_service_settings(tmp_path, janus.ws_url, port, (43000, 43999), archive=archive)
    assert settings.recorder.capture is False  # off by default: the room's policy turns it on
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    publisher: PublisherProcess | None = None
    try:
        async with client() as http:
            await wait_ready(http, base, 15)
            async with http.put(
                f"{base}/v1/rooms/{ROOM}/policy", json={"record": True, "capture": True}
            ) as r:
                assert r.status == 200, await r.text()
            publisher = await PublisherProcess.start(
                janus.ws_url, ROOM, "agent", codec="vp8", seconds=CALL, fps=FPS, ice_address=ns.address,
                netns=ns.name,
            )  # fmt: skip
            published = await publisher.event("published")
            await publisher.finish(within=CALL + 20)
            (recording,) = await wait_finished(http, base, 15)
    finally:
        if publisher is not None:
            publisher.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()
    await asyncio.to_thread(check, Path(recording["folder"]), published, tmp_path / "rebuilt")


def check(folder: Path, published: dict[str, object], out: Path) -> None:
    streams = published["streams"]
    assert isinstance(streams, list)
    mids = {s["type"]: s["mid"] for s in streams}
    names = [f"{published['id']}-video-{mids['video']}", f"{published['id']}-audio-{mids['audio']}"]
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {o["name"]: o["sha256"] for o in manifest["objects"]}
    captures = []
    stream_ids: set[int] = set()
    for name in names:
        summary = json.loads((folder / f"{name}.json").read_text())
        assert summary["state"] == "complete" and summary["packets_received"] > 50
        segments = sorted((folder / f"{name}.capture").glob("*.pcapng"))
        assert segments, f"no capture of {name}"
        received = 0
        for segment in segments:
            data = segment.read_bytes()
            rel = segment.relative_to(folder).as_posix()
            assert listed.get(rel) == hashlib.sha256(data).hexdigest(), rel  # hashed into the manifest
            capture = parse(data)
            received += sum(
                1 for d in capture.datagrams if d.interface == 0 and not 192 <= d.payload[1] <= 223
            )
            assert any(e.comment.startswith("callvault forwarder ") for e in capture.events)
            # Every segment names the Janus forwarder (its stream id) the packets came from.
            (named,) = [
                json.loads(e.comment.split(" ", 2)[2])
                for e in capture.events
                if e.comment.startswith("callvault sfu-forwarder ")
            ]
            assert isinstance(named["janus_stream_id"], int) and named["publisher"] == str(published["id"])
            stream_ids.add(named["janus_stream_id"])
        assert received >= summary["packets_received"]  # every packet the track took is in its capture
        captures += [str(s) for s in segments]
    assert len(stream_ids) == 2  # the audio and the video forwarder

    result = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "record-pcap", *captures, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in names:
        live = json.loads((folder / f"{name}.json").read_text())
        rebuilt = json.loads((out / f"{name}.json").read_text())
        assert ffprobe_errors(out / rebuilt["file"]) == ""
        a, b = read_packets(folder / live["file"]), read_packets(out / rebuilt["file"])
        assert len(a.data) > CALL * 20, name
        assert a.data == b.data and a.keyframes == b.keyframes and a.pts_seconds == b.pts_seconds, name
        for field in ("frames", "keyframes", "packets_received", "packets_lost", "first_rtp_timestamp"):
            assert rebuilt[field] == live[field], (name, field)
