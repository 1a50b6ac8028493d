"""WebRTC publishers into a real mediasoup WebRtcTransport (ICE-lite, DTLS-SRTP, one BUNDLE port), recorded
by `callvault serve` through the package's PlainTransport Consumers: what a mediasoup application really
records, not an ffmpeg feed. ICE never works on loopback, so the whole call (the service, the Node
harness and its worker, the publisher) runs in a network namespace the test makes (tests/helpers/netns.py).

The aiortc publisher stamps every frame with its counter (frame_marks): the recording must hold the sent
frames in order, none twice, none missing after the first."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import frame_marks
import pytest
from mediasoup_kit import CallVault, Harness
from netns import NetNamespace, network_namespace
from webrtc_kit import answer, dtls_parameters, parse_offer, producer_parameters

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOM = "webrtc-7"
SECONDS = 4.0
FPS = 30.0


@pytest.fixture
def namespace() -> Iterator[NetNamespace]:
    """The test's thread inside a fresh network namespace: everything it starts lives there."""
    with network_namespace() as ns, ns.entered():
        yield ns


@pytest.fixture
def callvault(tmp_path: Path, mediasoup_worker: Path, namespace: NetNamespace) -> Iterator[CallVault]:
    service = CallVault(tmp_path / "callvault")
    service.start()
    yield service
    service.stop()


async def until(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


async def aiortc_publish(harness: Harness, ns: NetNamespace, participant: str) -> tuple[list[int], int]:
    """aiortc publishes counter-stamped VP8 and an Opus tone to a WebRtcTransport of the harness's Router
    (two Producers), for SECONDS; returns (counters of the frames sent, audio frames sent)."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
    from webrtc import PublisherOptions, _tracks, pinned_ice

    t0 = time.monotonic()
    options = PublisherOptions(ws_url="", room=0, display=participant, seconds=SECONDS, fps=FPS)
    video, audio = _tracks(options, lambda: time.monotonic() - t0)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        with pinned_ice(ns.address):
            transport = harness.call(
                "webrtcTransport", participant=participant, display=participant.title(), ip=ns.address
            )
            audio_tr = pc.addTransceiver(audio, direction="sendonly")
            video_tr = pc.addTransceiver(video, direction="sendonly")
            audio_tr.setCodecPreferences(
                [
                    c
                    for c in RTCRtpSender.getCapabilities("audio").codecs
                    if c.mimeType.lower() == "audio/opus"
                ]
            )
            video_tr.setCodecPreferences(
                [c for c in RTCRtpSender.getCapabilities("video").codecs
                 if c.mimeType.lower() in ("video/vp8", "video/rtx")]
            )  # fmt: skip
            await pc.setLocalDescription(await pc.createOffer())
            offer = parse_offer(pc.localDescription.sdp)
            harness.call("connectWebRtc", id=transport["id"], dtlsParameters=dtls_parameters(offer))
            for section in offer.sections:
                harness.call(
                    "produceOn", transport=transport["id"], kind=section.kind,
                    rtpParameters=producer_parameters(section),
                )  # fmt: skip
            await pc.setRemoteDescription(RTCSessionDescription(answer(offer, transport), "answer"))
            await until(lambda: pc.connectionState in ("connected", "failed"), 15)
            assert pc.connectionState == "connected"
            await until(lambda: video.readyState == "ended", SECONDS + 15)
            await asyncio.sleep(0.5)  # the last frames' packets (and any retransmission) get through
    finally:
        video.stop()
        audio.stop()
        with contextlib.suppress(Exception):
            await pc.close()
    return list(video.counters), audio.sent


def test_aiortc_webrtc_publisher_recorded_frame_for_frame(
    callvault: CallVault, mediasoup_worker: Path, namespace: NetNamespace, tmp_path: Path
) -> None:
    harness = Harness(mediasoup_worker, callvault.url, ROOM, tmp_path / "node.log")
    try:
        sent, audio_sent = asyncio.run(aiortc_publish(harness, namespace, "carol"))
        for _ in range(2):  # the package registered both Producers with CallVault
            harness.streamstart("carol")
        harness.call("closeRouter")
        rid = callvault.finished(ROOM)
    finally:
        harness.close()
    summaries = callvault.summaries(rid)
    video = next(s for s in summaries.values() if s["kind"] == "video")
    audio = next(s for s in summaries.values() if s["kind"] == "audio")
    assert video["state"] == "complete" and audio["state"] == "complete", (video, audio)
    assert video["name"].startswith("carol-") and video["codec"] == "VP8"
    folder = callvault.data / "recordings" / rid
    got = frame_marks.read_counters(folder / video["file"])
    assert len(sent) == round(SECONDS * FPS)
    # Every frame from the first recorded one to the last sent, in order, once: nothing lost, changed or
    # written twice; recording starts within the first second (the Consumer asks for a keyframe).
    assert got == sent[sent.index(got[0]) :], (got[:5], got[-5:], len(got), len(sent))
    assert got[0] < FPS, got[:5]
    assert video["frames"] == len(got) and video["packets_lost"] == 0, video
    assert audio["packets_lost"] == 0 and audio_sent - FPS * 2 < audio["frames"] <= audio_sent, (
        audio,
        audio_sent,
    )
