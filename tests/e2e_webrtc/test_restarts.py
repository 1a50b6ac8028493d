"""Restarts mid-call, with real Janus and real aiortc publishers in a network namespace:
- Janus is killed and restarted: the publisher's first tracks end where Janus died; when it publishes
  again, it is recorded again in the same recording, and the gap between the two is visible.
- `callvault serve` is killed (SIGKILL) and started again: the crashed tracks are finalized at start-up,
  the call is taken up again in the same recording (new forwarders, tracks named -part2), and together
  the two parts hold the publisher's frames in order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from age_kit import keygen
from frame_marks import gaps, read_counters
from janus_fixture import ADMIN_KEY, ROOM, ROOM_SECRET, JanusServer, start_or_skip
from media import ffprobe_errors
from netns import NetNamespace
from service_kit import API_KEY, client, free_tcp_port, janus_service_settings, wait_finished, wait_ready
from webrtc import PublisherProcess

from recorder.commands.serve import serve
from recorder.service.settings import ServiceSettings

pytestmark = pytest.mark.slow
FPS = 30


def janus_for(ns: NetNamespace, tmp_path: Path, port: int) -> JanusServer:
    return JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8,h264",
        sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evt",
    )


def settings_for(tmp_path: Path, janus: JanusServer, port: int) -> ServiceSettings:
    return janus_service_settings(tmp_path, janus.ws_url, port, (43000, 43999), segment_seconds=1.0)


async def wait_stored(data_dir: Path, within: float) -> None:
    """Until the store has the manifest and the data folder no plaintext recording (polls every 0.2 s)."""
    store, recordings = data_dir / "recordings-store", data_dir / "recordings"

    def done() -> bool:
        return bool(list(store.rglob("manifest.json"))) and not any(recordings.iterdir())

    for _ in range(int(within / 0.2)):
        if await asyncio.to_thread(done):
            return
        await asyncio.sleep(0.2)
    left = [str(p.relative_to(data_dir)) for p in recordings.rglob("*")][:10]
    raise AssertionError(
        f"not stored within {within} s: manifests {list(store.rglob('manifest.json'))}, left {left}"
    )


def restored(data_dir: Path, tmp_path: Path) -> Path:
    """The encrypted recording as the service left it: ciphertext only in the store, no plaintext in the
    data folder; decrypted by `callvault decrypt` into a new folder."""
    (manifest,) = (data_dir / "recordings-store").rglob("manifest.json")
    stored = manifest.parent
    suffixes = {p.suffix for p in stored.rglob("*") if p.is_file()}
    assert suffixes == {".age", ".json", ".sig"}, suffixes
    leftovers = [p for p in (data_dir / "recordings").rglob("*") if p.is_file()]
    leftovers += [p for p in (data_dir / "spool").rglob("*") if p.is_file() and p.suffix in {".webm", ".mkv"}]
    assert leftovers == [], leftovers
    out = tmp_path / "decrypted"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "recorder.cli",
            "decrypt",
            str(stored),
            "--identity",
            str(tmp_path / "key.txt"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def video_tracks(folder: Path) -> list[dict[str, Any]]:
    tracks = [json.loads(p.read_text()) for p in sorted(folder.glob("*-video-*.json"))]
    return sorted(tracks, key=lambda t: t["first_wallclock"] or 0)


async def publish(janus: JanusServer, ns: NetNamespace, display: str, seconds: float) -> PublisherProcess:
    return await PublisherProcess.start(
        janus.ws_url,
        ROOM,
        display,
        codec="vp8",
        seconds=seconds,
        fps=FPS,
        ice_address=ns.address,
        netns=ns.name,
    )


async def test_janus_restart_mid_call(netns_for_test: NetNamespace, tmp_path: Path) -> None:
    ns = netns_for_test
    port = free_tcp_port()
    janus = janus_for(ns, tmp_path, port)
    start_or_skip(janus)
    stop = asyncio.Event()
    service = asyncio.create_task(serve(settings_for(tmp_path, janus, port), stop, signals=False))
    base = f"http://127.0.0.1:{port}"
    publishers: list[PublisherProcess] = []
    try:
        async with client() as http:
            await wait_ready(http, base, 15)
            first = await publish(janus, ns, "agent", 10.0)
            publishers.append(first)
            await first.event("media")
            await asyncio.sleep(2.0)
            janus.kill()  # the SFU dies mid-call; its publisher's PeerConnection with it
            first.kill()
            await asyncio.sleep(1.0)
            janus.start()
            await wait_ready(http, base)
            second = await publish(janus, ns, "agent", 2.0)  # the agent's app publishes again
            publishers.append(second)
            await second.finish(within=30)

            (recording,) = await wait_finished(http, base, 20)
    finally:
        for p in publishers:
            p.kill()
        stop.set()
        await asyncio.wait_for(service, 60)
        janus.stop()

    folder = Path(recording["folder"])
    before, after = video_tracks(folder)
    for track in (before, after):
        assert track["state"] == "complete" and ffprobe_errors(folder / track["file"]) == ""
        counters = read_counters(folder / track["file"])
        assert counters and gaps(counters) == [] and counters == sorted(set(counters))
    # The outage is a visible gap between the two tracks, as long as Janus was away (~1 s or more).
    assert after["first_wallclock"] - before["last_wallclock"] >= 0.9
    assert before["last_wallclock"] - before["first_wallclock"] == pytest.approx(2.0, abs=0.7)


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
async def test_service_killed_and_restarted_mid_call(
    netns_for_test: NetNamespace, tmp_path: Path, encrypted: bool
) -> None:
    """Encrypted (archive.encryption with the local store): the same, and what is stored is ciphertext
    only, no plaintext is left in the data folder, and `callvault decrypt` gives back both parts."""
    ns = netns_for_test
    port = free_tcp_port()
    janus = janus_for(ns, tmp_path, port)
    start_or_skip(janus)
    settings = settings_for(tmp_path, janus, port)
    config = tmp_path / "callvault.toml"
    config.write_text(
        f'data_dir = "{settings.data_dir}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n'
        f'rtp_bind = "127.0.0.1"\n'
        f"rtp_port_min = 43000\nrtp_port_max = 43999\n[recorder]\nsegment_seconds = 1.0\n"
        f'[janus]\nws_url = "{janus.ws_url}"\nadmin_key = "{ADMIN_KEY}"\nroom_secret = "{ROOM_SECRET}"\n'
        f'events_token = "evt"\nempty_room_grace = 1.0\n[api]\nadmin_key = "{API_KEY}"\n'
    )
    if encrypted:
        recipient = keygen(tmp_path / "key.txt")
        with config.open("a") as f:
            f.write(f'[archive]\n[archive.encryption]\nrecipients = ["{recipient}"]\n')

    def start_service() -> subprocess.Popen[bytes]:
        # Started from this thread, the child lives in the test's network namespace too.
        return subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
            stdout=(tmp_path / "serve.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    base = f"http://127.0.0.1:{port}"
    service = start_service()
    publisher: PublisherProcess | None = None
    try:
        async with client() as http:
            await wait_ready(http, base, 20)
            publisher = await publish(janus, ns, "agent", 9.0)
            published = await publisher.event("published")
            await publisher.event("media")
            await asyncio.sleep(2.5)
            os.kill(service.pid, signal.SIGKILL)  # no chance to finish anything
            service.wait(timeout=10)
            service = start_service()
            await wait_ready(http, base)
            sent = await publisher.finish(within=30)

            (recording,) = await wait_finished(http, base, 20)
            if encrypted:  # stored and announced: the store has its manifest, the plaintext is gone
                await wait_stored(settings.data_dir, 30)
    finally:
        if publisher is not None:
            publisher.kill()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        janus.stop()

    folder = Path(recording["folder"])
    if encrypted:
        folder = restored(settings.data_dir, tmp_path)
    mid = next(s["mid"] for s in published["streams"] if s["type"] == "video")
    name = f"{published['id']}-video-{mid}"
    crashed = json.loads((folder / f"{name}.json").read_text())
    resumed = json.loads((folder / f"{name}-part2.json").read_text())
    assert crashed["state"] == "recovered" and resumed["state"] == "complete"
    counters = []
    for track in (crashed, resumed):
        assert ffprobe_errors(folder / track["file"]) == ""
        part = read_counters(folder / track["file"])
        assert part and gaps(part) == []
        counters += part
    assert counters == sorted(set(counters)) and set(counters) <= set(sent["counters"])
    # What is missing is the restart, recorded as the gap between the parts (how long the restart took
    # depends on the machine's load): nothing is lost outside it.
    missing = len(sent["counters"]) - len(counters)
    outage = resumed["first_wallclock"] - crashed["last_wallclock"]
    assert 0 < outage < 20 and 0 < missing <= (outage + 1) * FPS, (missing, outage)
