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


# -- simulcast from headless Chromium ------------------------------------------------------------------

WIDTH, HEIGHT = 640, 360
LAYERS = [{"rid": "h", "scale": 1, "max_bitrate": 900_000}, {"rid": "l", "scale": 2, "max_bitrate": 200_000}]
"""Two VP8 layers, 640x360 and 320x180 (small, for two cores shared by many)."""


async def chromium_publish(
    harness: Harness, ns: NetNamespace, who: list[tuple[str, dict[str, int] | None]], seconds: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One Chromium page per participant publishes the fake camera in simulcast (LAYERS) to its own
    WebRtcTransport, whose Producer the package records at the participant's preferred layers (None: the
    default). Returns each page's outbound-rtp stats at the end and the recording Consumers' stats
    (their current layers) just before the Producers close."""
    from chromium import JS_ANSWER, JS_OFFER, JS_STATS, ChromiumBrowser

    stats: list[dict[str, Any]] = []
    async with ChromiumBrowser.launch() as browser:
        pages = []
        for participant, layers in who:
            page = await browser.browser.new_page()
            await page.route(
                "http://localhost/**",
                lambda route: route.fulfill(content_type="text/html", body="<title>publisher</title>"),
            )
            await page.goto("http://localhost/publisher.html")
            sdp = await page.evaluate(
                JS_OFFER,
                {"audio": False, "video": True, "width": WIDTH, "height": HEIGHT, "fps": 30,
                 "codec": "vp8", "layers": LAYERS},
            )  # fmt: skip
            offer = parse_offer(sdp)
            assert offer.sections[0].rids == ["h", "l"], sdp
            transport = harness.call(
                "webrtcTransport", participant=participant, display=participant.title(), ip=ns.address,
                **({"preferredLayers": layers} if layers else {}),
            )  # fmt: skip
            harness.call("connectWebRtc", id=transport["id"], dtlsParameters=dtls_parameters(offer))
            scales = {layer["rid"]: float(layer["scale"]) for layer in LAYERS}
            produced = harness.call(
                "produceOn", transport=transport["id"], kind="video",
                rtpParameters=producer_parameters(offer.sections[0], scales),
            )  # fmt: skip
            state = await page.evaluate(
                JS_ANSWER, {"type": "answer", "sdp": answer(offer, transport, start_kbps=1500)}
            )
            assert state == "connected", state
            pages.append((page, produced["id"]))
        await asyncio.sleep(seconds)  # the call's length
        consumers = harness.call("consumerStats")["consumers"]
        for page, producer in pages:
            stats.append(await page.evaluate(JS_STATS))
            harness.call("close", id=producer)
    return stats, consumers


def test_chromium_simulcast_recorded_at_the_chosen_layer(
    callvault: CallVault, mediasoup_worker: Path, namespace: NetNamespace, tmp_path: Path
) -> None:
    """Dave is recorded at mediasoup's default (the highest layer), Erin at spatial layer 0
    (recordRouter's participant function gives her preferredLayers): each recorded picture size is the
    chosen layer's, as the Consumers' own current layers say. mediasoup picks the best layer that has
    packets when the Consumer starts, so a track may begin on the other layer for a moment and then
    switch (at a keyframe) to the chosen one for good."""
    harness = Harness(mediasoup_worker, callvault.url, "simulcast-3", tmp_path / "node.log")
    try:
        stats, consumers = asyncio.run(
            chromium_publish(harness, namespace, [("dave", None), ("erin", {"spatialLayer": 0})], 6.0)
        )
        harness.call("closeRouter")
        rid = callvault.finished("simulcast-3")
    finally:
        harness.close()
    sent = {(v["rid"], v["frameWidth"], v["frameHeight"]) for s in stats for v in s["video"]}
    assert ("h", WIDTH, HEIGHT) in sent and ("l", WIDTH // 2, HEIGHT // 2) in sent, stats
    summaries = callvault.summaries(rid)
    dave = next(s for s in summaries.values() if s["name"].startswith("dave-"))
    erin = next(s for s in summaries.values() if s["name"].startswith("erin-"))
    for track in (dave, erin):
        assert track["state"] == "complete" and track["frames"] > 12, track
        assert track["packets_lost"] == 0 and not track["gaps"], track
    for track, size in ((dave, (WIDTH, HEIGHT)), (erin, (WIDTH // 2, HEIGHT // 2))):
        assert (track["layers"][-1]["width"], track["layers"][-1]["height"]) == size, track["layers"]
        chosen = sum(x["frames"] for x in track["layers"] if (x["width"], x["height"]) == size)
        assert chosen > 0.7 * track["frames"], track["layers"]
    layers = {c["participant"]: c["currentLayers"] for c in consumers}
    assert layers["dave"]["spatialLayer"] == 1 and layers["erin"]["spatialLayer"] == 0, consumers
