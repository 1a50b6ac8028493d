"""SRTP on the forward leg, end to end (issue 11): a real Janus 1.1.2 in a network namespace, a real aiortc
VP8 publisher, and `callvault serve` with Janus forwarding to the namespace's own address (not loopback),
so `janus.forward_srtp = "auto"` turns SRTP on. Meanwhile the test has Janus forward the same publisher's
video as plain RTP to a RecordingSession of its own, and captures the leg with a raw packet socket.

- The SRTP recording holds the publisher's frames in order without gaps, and every frame of the plain
  recording is in it, bit for bit, in the same order (SRTP changes nothing of what is recorded).
- Janus lists the service's forwarders as SRTP, and the service's tracks dropped nothing as
  unauthenticated.
- On the wire, the SRTP datagrams hold none of the frames' bytes, while the plain forward's datagrams of
  the same frames do (the check finds plaintext when there is some).
- The keys (one per forwarder, seen through a spy on `SrtpKey.generate`) appear in no log line, in no
  file of the data folder (`state.json` included, read mid-call), and not in `/readyz` or `/v1/status`.

And the restart: `callvault serve` killed mid-call (SIGKILL) and started again takes the call up with
new forwarders under new keys, and the two parts together hold the publisher's frames in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from frame_marks import gaps, read_counters
from janus_fixture import ADMIN_KEY, ROOM, ROOM_SECRET, JanusServer, start_or_skip
from media import ffprobe_errors, read_packets
from netns import NetNamespace
from service_kit import (
    API_KEY,
    client,
    free_tcp_port,
    janus_service_settings,
    wait_finished,
    wait_ready,
)
from webrtc import PublisherProcess

from janus_bridge.client import JanusClient
from janus_bridge.videoroom import ForwardStream
from recorder.commands.serve import serve
from recorder.config import RecorderSettings
from recorder.crypto.srtp import SrtpKey, SrtpSuite
from recorder.models import Codec, StreamSpec
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow

FPS = 30
CALL = 5.0
RTP_PORTS = (45000, 45999)
ETH_P_IP = 0x0800


class LegCapture:
    """UDP payloads seen on the namespace's loopback (where both forward legs run), by destination address
    (only to the ports `ports` gives for it): a raw AF_PACKET socket, read in a thread until stopped."""

    def __init__(self, ports: dict[str, tuple[int, int]]) -> None:
        self.ports = ports
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.payloads: dict[str, list[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leg-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, meta = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if meta[2] == socket.PACKET_OUTGOING:
                continue  # loopback shows every packet twice: keep the incoming copy
            ip = frame[14:]
            if len(ip) < 28 or ip[9] != socket.IPPROTO_UDP:
                continue
            header = (ip[0] & 0x0F) * 4
            dst = socket.inet_ntoa(ip[16:20])
            dport = struct.unpack("!H", ip[header + 2 : header + 4])[0]
            low, high = self.ports.get(dst, (1, 0))
            if low <= dport <= high:
                self.payloads.setdefault(dst, []).append(bytes(ip[header + 8 :]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@contextmanager
def leg_capture(ports: dict[str, tuple[int, int]]) -> Iterator[LegCapture]:
    capture = LegCapture(ports)
    try:
        yield capture
    finally:
        capture.stop()


@contextmanager
def keys_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SrtpKey]]:
    """Every SRTP key the service makes (a spy: the real generator runs)."""
    made: list[SrtpKey] = []
    real = SrtpKey.generate.__func__  # type: ignore[attr-defined]

    def spy(cls: type[SrtpKey], suite: SrtpSuite = SrtpSuite.AES_CM_128_HMAC_SHA1_80) -> SrtpKey:
        key: SrtpKey = real(cls, suite)
        made.append(key)
        return key

    monkeypatch.setattr(SrtpKey, "generate", classmethod(spy))
    yield made


def secret_forms(keys: list[SrtpKey]) -> list[bytes]:
    forms = []
    for key in keys:
        forms += [key.material, key.inline().encode(), key.material.hex().encode()]
    return forms


def contains_any(blob: bytes, needles: list[bytes]) -> bool:
    return any(n in blob for n in needles)


async def forward_plain(
    janus: JanusServer, session: RecordingSession, published: dict[str, Any]
) -> tuple[int, int]:
    """The publisher's video forwarded as plain RTP to a track of `session` (and its stream id)."""
    mid = next(s["mid"] for s in published["streams"] if s["type"] == "video")
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind(("127.0.0.1", 0))
    rtcp_port = rtcp.getsockname()[1]
    rtcp.close()
    track = await session.add_track(
        StreamSpec(name="plain-video", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=0,
                   rtcp_port=rtcp_port, address="127.0.0.1")
    )  # fmt: skip
    async with JanusClient(janus.ws_url, request_timeout=5.0) as jc:
        room = await jc.videoroom()
        (forwarder,) = await room.rtp_forward(
            ROOM,
            published["id"],
            "127.0.0.1",
            [ForwardStream(mid, track.port, rtcp_port=rtcp_port, pt=96)],
            secret=ROOM_SECRET,
            admin_key=ADMIN_KEY,
        )
        listed = await room.list_forwarders(ROOM, ROOM_SECRET)
    srtp_flags = {f.port: f.srtp for p in listed for f in p.forwarders}
    assert srtp_flags.pop(track.port) is None  # ours: plain
    assert srtp_flags and all(flag is True for flag in srtp_flags.values()), srtp_flags  # the service's
    return track.port, forwarder.stream_id


async def test_call_over_srtp_is_recorded_bit_for_bit_and_the_leg_carries_no_plaintext(
    netns_for_test: NetNamespace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    ns = netns_for_test
    port = free_tcp_port()
    janus = JanusServer(
        tmp_path / "janus",
        ice_enforce_list=ns.interface,
        videocodec="vp8",
        sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evt",
    )
    start_or_skip(janus)
    settings = janus_service_settings(tmp_path, janus.ws_url, port, RTP_PORTS)
    settings.rtp_bind = ns.address
    settings.janus.forward_host = ns.address  # not loopback: forward_srtp "auto" means SRTP
    assert settings.janus.forward_srtp == "auto" and settings.janus.srtp_suite() is not None
    workers = MuxWorkers(1)
    plain = RecordingSession(tmp_path / "plain", RecorderSettings(segment_seconds=2.0), workers)
    stop = asyncio.Event()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    legs = {ns.address: RTP_PORTS, "127.0.0.1": (1024, 65535)}  # the service's leg; the test's plain one
    with keys_made(monkeypatch) as keys, leg_capture(legs) as capture:
        service = asyncio.create_task(serve(settings, stop, signals=False))
        publisher: PublisherProcess | None = None
        try:
            async with client() as http:
                await wait_ready(http, base, 15)
                publisher = await PublisherProcess.start(
                    janus.ws_url, ROOM, "agent", codec="vp8", seconds=CALL, fps=FPS,
                    ice_address=ns.address, netns=ns.name,
                )  # fmt: skip
                published = await publisher.event("published")
                await publisher.event("media")
                await forward_plain(janus, plain, published)
                mid_call = {}
                for path in ("/readyz", "/v1/status"):
                    async with http.get(base + path, headers=headers) as response:
                        mid_call[path] = await response.read()
                state = await asyncio.to_thread((settings.data_dir / "state.json").read_bytes)
                sent = await publisher.finish(within=CALL + 20)
                await plain.stop()
                (recording,) = await wait_finished(http, base, 15)
        finally:
            if publisher is not None:
                publisher.kill()
            stop.set()
            await asyncio.wait_for(service, 60)
            workers.shutdown()
            janus.stop()

    # One key per forwarder: the publisher's audio and video.
    assert len(keys) == 2 and len({k.material for k in keys}) == 2
    folder = Path(recording["folder"])
    mids = {s["type"]: s["mid"] for s in published["streams"]}
    video = json.loads((folder / f"{published['id']}-video-{mids['video']}.json").read_text())
    audio = json.loads((folder / f"{published['id']}-audio-{mids['audio']}.json").read_text())
    for track in (video, audio):
        assert track["state"] == "complete" and ffprobe_errors(folder / track["file"]) == ""
        assert track["packets_unauthenticated"] == 0 and track["packets_replayed"] == 0, track
        assert track["packets_received"] > 50
    counters = read_counters(folder / video["file"])
    assert (
        counters == sorted(set(counters)) and gaps(counters) == [] and set(counters) <= set(sent["counters"])
    )
    assert len(counters) >= (CALL - 1) * FPS

    # Bit for bit: the plain recording (from a keyframe after it started) is a run of the SRTP one.
    (plain_summary,) = plain.finished.values()
    assert plain_summary.file is not None
    srtp_frames = read_packets(folder / video["file"]).data
    plain_frames = read_packets(tmp_path / "plain" / plain_summary.file).data
    assert len(plain_frames) >= 2 * FPS
    start = srtp_frames.index(plain_frames[0])
    assert srtp_frames[start : start + len(plain_frames)] == plain_frames

    # The wire: the frames' bytes are in the plain leg's datagrams, in none of the SRTP leg's.
    srtp_datagrams = [p for p in capture.payloads.get(ns.address, []) if len(p) > 12]
    srtp_leg = b"\x00".join(capture.payloads.get(ns.address, []))
    plain_leg = b"\x00".join(capture.payloads.get("127.0.0.1", []))
    assert len(srtp_datagrams) > video["packets_received"] + audio["packets_received"] - 50
    samples = [f[20:52] for f in plain_frames if len(f) >= 52]
    assert len(samples) > FPS
    assert all(s in plain_leg for s in samples[:40])  # the check sees plaintext where there is some
    leaked = [s for s in samples if s in srtp_leg]
    assert leaked == [], f"{len(leaked)} frame samples in clear on the SRTP leg"

    # The keys: in no log line, no file, no API answer.
    forms = secret_forms(keys)
    assert not contains_any(caplog.text.encode(), forms)
    assert not contains_any(state, forms) and b"srtp" not in state.lower()
    assert not any(contains_any(body, forms) for body in mid_call.values())
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            assert not contains_any(path.read_bytes(), forms), path


async def resumed_media(data_dir: Path, prefix: str, packets: int, within: float) -> None:
    """Until a resumed track (`<prefix>*-part2.json`, checkpointed while it records) counts `packets`."""

    def counted() -> int:
        found = list((data_dir / "recordings").glob(f"*/{prefix}*-part2.json"))
        try:
            return max((json.loads(f.read_text())["packets_received"] for f in found), default=0)
        except (OSError, ValueError):
            return 0  # caught mid-rewrite: look again

    deadline = asyncio.get_running_loop().time() + within
    while await asyncio.to_thread(counted) < packets:
        assert asyncio.get_running_loop().time() < deadline, f"no resumed track with {packets} packets"
        await asyncio.sleep(0.2)


async def test_service_killed_mid_call_resumes_with_new_keys(
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
    config = tmp_path / "callvault.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n'
        f'rtp_bind = "{ns.address}"\nrtp_port_min = {RTP_PORTS[0]}\nrtp_port_max = {RTP_PORTS[1]}\n'
        f"[recorder]\nsegment_seconds = 1.0\n"
        f'[janus]\nws_url = "{janus.ws_url}"\nadmin_key = "{ADMIN_KEY}"\nroom_secret = "{ROOM_SECRET}"\n'
        f'events_token = "evt"\nempty_room_grace = 1.0\nforward_host = "{ns.address}"\n'
        f'forward_srtp = "on"\nforward_srtp_suite = "AES_CM_128_HMAC_SHA1_32"\n'
        f'[api]\nadmin_key = "{API_KEY}"\n'
    )
    log = tmp_path / "serve.log"

    def start_service() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def forwarders() -> dict[int, bool | None]:
        async with JanusClient(janus.ws_url, request_timeout=5.0) as jc:
            listed = await (await jc.videoroom()).list_forwarders(ROOM, ROOM_SECRET)
        return {f.stream_id: f.srtp for p in listed for f in p.forwarders}

    base = f"http://127.0.0.1:{port}"
    service = start_service()
    publisher: PublisherProcess | None = None
    try:
        async with client() as http:
            await wait_ready(http, base, 20)
            publisher = await PublisherProcess.start(
                janus.ws_url, ROOM, "agent", codec="vp8", seconds=60.0, fps=FPS, ice_address=ns.address,
                netns=ns.name,
            )  # fmt: skip
            published = await publisher.event("published")
            await publisher.event("media")
            await asyncio.sleep(2.0)
            before = await forwarders()
            os.kill(service.pid, signal.SIGKILL)
            service.wait(timeout=10)
            service = start_service()
            await wait_ready(http, base)
            after: dict[int, bool | None] = {}
            deadline = asyncio.get_running_loop().time() + 20
            while asyncio.get_running_loop().time() < deadline:  # the restarted service's forwarders
                listed = await forwarders()
                if len(listed) == 2 and not set(listed) & set(before):
                    after = listed
                    break
                await asyncio.sleep(0.05)
            await resumed_media(tmp_path / "data", f"{published['id']}-video-", 2 * FPS, within=30)
            publisher.terminate()  # stops sending, leaves, prints what it sent
            sent = await publisher.finish(within=30)
            (recording,) = await wait_finished(http, base, 20)
    finally:
        if publisher is not None:
            publisher.kill()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        janus.stop()

    assert len(before) == 2 and all(flag is True for flag in before.values()), before
    # New forwarders (new keys: the restarted process never had the old ones), SRTP again.
    assert len(after) == 2 and all(after.values()), (before, after, log.read_text()[-3000:])
    folder = Path(recording["folder"])
    mid = next(s["mid"] for s in published["streams"] if s["type"] == "video")
    name = f"{published['id']}-video-{mid}"
    crashed = json.loads((folder / f"{name}.json").read_text())
    resumed = json.loads((folder / f"{name}-part2.json").read_text())
    assert crashed["state"] == "recovered" and resumed["state"] == "complete"
    assert resumed["packets_unauthenticated"] == 0 and resumed["packets_received"] > 50, resumed
    counters: list[int] = []
    for track in (crashed, resumed):
        assert ffprobe_errors(folder / track["file"]) == ""
        part = read_counters(folder / track["file"])
        assert part and gaps(part) == []
        counters += part
    assert counters == sorted(set(counters)) and set(counters) <= set(sent["counters"])
    # What is missing is the restart: the frames between the crashed part's last and the resumed one's first.
    outage = resumed["first_wallclock"] - crashed["last_wallclock"]
    assert 0 < len(sent["counters"]) - len(counters) <= (outage + 1) * FPS, outage
    text = log.read_text()
    assert "as SRTP (AES_CM_128_HMAC_SHA1_32)" in text and "srtp_crypto" not in text
