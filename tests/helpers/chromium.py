"""Headless Chromium as a WebRTC publisher into a Janus VideoRoom, for end-to-end tests: what browsers
really send (VP8 simulcast with rids, H.264 from the browser's own encoder, Opus with DTX and FEC), which
aiortc cannot.

Debian's ``chromium`` package (``apt-get install -y chromium``) driven by Playwright from PyPI with
``executable_path``: no browser download, ever (``playwright install`` is never run). The fake camera and
microphone (``--use-fake-device-for-media-stream``) feed it: a moving test picture and a beep. The page
comes from ``http://localhost/`` served by ``page.route`` (getUserMedia needs a secure context; nothing
goes on the network). Like the aiortc publisher, Chromium must run in the test's network namespace
(ICE never works on loopback): launch it from the thread that entered it, so the Playwright driver and
the browser inherit the namespace.

    async with ChromiumBrowser.launch() as browser:           # pytest.skip where Chromium cannot run
        pub = await browser.publish(janus.ws_url, ROOM, "alice", codec="vp8", simulcast=SIMULCAST)
        await pub.set_active("h", False)                      # RTCRtpSender.setParameters
        stats = await pub.stats()                             # outbound-rtp per layer (rid)
        await pub.leave()

Signalling goes over Janus's WebSocket API from Python (``JanusClient``), non-trickle: the offer is sent
once the browser finished gathering. The publish request carries a ``bitrate`` high enough for every
layer (Janus's REMB caps the browser otherwise); the answer is given ``x-google-start-bitrate`` so the
upper layers start within a second instead of after the bandwidth estimate's ramp-up, and Opus
``usedtx=1;useinbandfec=1`` so the browser uses DTX and in-band FEC.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient, PluginHandle

CHROMIUM = Path("/usr/bin/chromium")
ARGS = (
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--mute-audio",
)
PAGE = "http://localhost/publisher.html"


@dataclass(frozen=True)
class Layer:
    """One simulcast encoding: its rid, how much smaller than the camera, its bitrate cap (bit/s)."""

    rid: str
    scale: float
    max_bitrate: int


SIMULCAST = (Layer("h", 1, 1_500_000), Layer("m", 2, 500_000), Layer("l", 4, 150_000))
"""Three VP8 layers as a browser app sends them: 1280x720, 640x360, 320x180 from a 720p camera."""


def unavailable_reason() -> str | None:
    """Why headless Chromium cannot be used here (None when it can, as far as we can tell without
    launching it)."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        return "Chromium is not installed (apt-get install -y chromium, or `make system-deps`)"
    return None


def executable() -> str:
    return str(CHROMIUM) if CHROMIUM.exists() else str(shutil.which("chromium"))


JS_OFFER = r"""async ({audio, video, width, height, fps, codec, layers}) => {
  // No echo cancellation, noise suppression or gain control: what the microphone gives is what is sent.
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: audio ? {echoCancellation: false, noiseSuppression: false, autoGainControl: false} : false,
    video: video ? {width: {exact: width}, height: {exact: height}, frameRate: fps} : false});
  const pc = new RTCPeerConnection({iceServers: []});
  window.pc = pc;
  window.senders = {};
  for (const track of stream.getAudioTracks()) {
    window.senders.audio = pc.addTransceiver(track, {direction: 'sendonly', streams: [stream]}).sender;
  }
  for (const track of stream.getVideoTracks()) {
    const init = {direction: 'sendonly', streams: [stream]};
    if (layers.length) {
      init.sendEncodings = layers.map(l => ({rid: l.rid, active: true, maxBitrate: l.max_bitrate,
                                             scaleResolutionDownBy: l.scale}));
    }
    const transceiver = pc.addTransceiver(track, init);
    // Offer only the wanted codec (packetization-mode 1 first for H.264) and its retransmissions.
    const codecs = RTCRtpSender.getCapabilities('video').codecs;
    const wanted = codecs.filter(c => c.mimeType.toLowerCase() === 'video/' + codec);
    if (!wanted.length) throw new Error('no ' + codec + ' encoder in this browser');
    wanted.sort((a, b) => (b.sdpFmtpLine || '').includes('packetization-mode=1')
                          - (a.sdpFmtpLine || '').includes('packetization-mode=1'));
    transceiver.setCodecPreferences([...wanted, ...codecs.filter(c => c.mimeType === 'video/rtx')]);
    window.senders.video = transceiver.sender;
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(resolve => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve();
    setTimeout(resolve, 5000);
  });
  return pc.localDescription.sdp;
}"""

JS_ANSWER = r"""async (answer) => {
  await pc.setRemoteDescription(answer);
  const deadline = Date.now() + 10000;
  while (pc.connectionState !== 'connected' && Date.now() < deadline) {
    if (pc.connectionState === 'failed') break;
    await new Promise(r => setTimeout(r, 20));
  }
  return pc.connectionState;
}"""

JS_ACTIVE = r"""async ({rid, active}) => {
  const sender = window.senders.video;
  const params = sender.getParameters();
  for (const e of params.encodings) if (e.rid === rid) e.active = active;
  await sender.setParameters(params);
  return sender.getParameters().encodings.map(e => ({rid: e.rid, active: e.active}));
}"""

JS_STATS = r"""async () => {
  const out = {connection: pc.connectionState, video: [], audio: null};
  (await pc.getStats()).forEach(r => {
    if (r.type === 'outbound-rtp' && r.kind === 'video') {
      out.video.push({rid: r.rid ?? null, ssrc: r.ssrc, active: r.active, packetsSent: r.packetsSent,
        framesEncoded: r.framesEncoded ?? 0, keyFramesEncoded: r.keyFramesEncoded ?? 0,
        frameWidth: r.frameWidth ?? null, frameHeight: r.frameHeight ?? null, fps: r.framesPerSecond ?? null,
        limitation: r.qualityLimitationReason ?? null, encoder: r.encoderImplementation ?? null,
        pliCount: r.pliCount ?? 0});
    } else if (r.type === 'outbound-rtp' && r.kind === 'audio') {
      out.audio = {ssrc: r.ssrc, packetsSent: r.packetsSent, bytesSent: r.bytesSent};
    }
  });
  out.video.sort((a, b) => (a.rid ?? '').localeCompare(b.rid ?? ''));
  return out;
}"""


def munge_answer(sdp: str, start_kbps: int | None, opus_dtx: bool, opus_fec: bool) -> str:
    """Janus's answer with what a browser app would ask its peer for: a start bitrate on the video
    codecs and DTX/FEC on Opus (the receiver's fmtp tells the sender what it may use)."""
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    opus_pts = {m.group(1) for line in lines if (m := re.match(r"a=rtpmap:(\d+) opus/", line, re.I))}
    video_pts = {
        m.group(1) for line in lines if (m := re.match(r"a=rtpmap:(\d+) (VP8|VP9|H264|AV1)/", line, re.I))
    }
    out: list[str] = []
    has_fmtp = {m.group(1) for line in lines if (m := re.match(r"a=fmtp:(\d+) ", line))}
    for original in lines:
        line = original
        m = re.match(r"a=fmtp:(\d+) (.*)", line)
        if m and m.group(1) in opus_pts:
            params = dict(p.split("=", 1) for p in m.group(2).split(";") if "=" in p)
            if opus_dtx:
                params["usedtx"] = "1"
            if opus_fec:
                params["useinbandfec"] = "1"
            line = f"a=fmtp:{m.group(1)} " + ";".join(f"{k}={v}" for k, v in params.items())
        elif m and m.group(1) in video_pts and start_kbps:
            line = f"{line};x-google-start-bitrate={start_kbps}"
        out.append(line)
        r = re.match(r"a=rtpmap:(\d+) ", line)
        if r and r.group(1) not in has_fmtp:
            if r.group(1) in opus_pts and (opus_dtx or opus_fec):
                added = ["usedtx=1"] * opus_dtx + ["useinbandfec=1"] * opus_fec
                out.append(f"a=fmtp:{r.group(1)} " + ";".join(added))
            elif r.group(1) in video_pts and start_kbps:
                out.append(f"a=fmtp:{r.group(1)} x-google-start-bitrate={start_kbps}")
    return "\r\n".join(out) + "\r\n"


@dataclass
class ChromiumPublisher:
    """One page of the browser publishing into a room; ``timeline`` records when layers were toggled."""

    page: Any
    client: JanusClient
    handle: PluginHandle
    publisher_id: int
    display: str
    offer: str
    answer: str
    streams: list[dict[str, Any]]
    started: float
    timeline: list[tuple[float, str, bool]] = field(default_factory=list)
    """(time.time(), rid, active) of each ``set_active``."""
    left: float | None = None

    async def set_active(self, rid: str, active: bool) -> list[dict[str, Any]]:
        """Turn one simulcast layer off or on (``RTCRtpSender.setParameters``); returns the encodings."""
        encodings: list[dict[str, Any]] = await self.page.evaluate(JS_ACTIVE, {"rid": rid, "active": active})
        self.timeline.append((time.time(), rid, active))
        return encodings

    async def stats(self) -> dict[str, Any]:
        """The sender's ``outbound-rtp`` stats: ``video`` (one entry per layer, by rid) and ``audio``."""
        stats: dict[str, Any] = await self.page.evaluate(JS_STATS)
        stats["time"] = time.time()
        return stats

    async def leave(self) -> None:
        """Leave the room (Janus unpublishes) and close the PeerConnection."""
        if self.left is not None:
            return
        self.left = time.time()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.handle.message({"request": "leave"}), 3.0)
        with contextlib.suppress(Exception):
            await self.page.evaluate("() => pc.close()")
        with contextlib.suppress(Exception):
            await self.client.close()


class ChromiumBrowser:
    """One headless Chromium (through Playwright) whose pages publish into Janus rooms."""

    def __init__(self, playwright: Any, browser: Any) -> None:
        self._playwright = playwright
        self.browser = browser
        self.publishers: list[ChromiumPublisher] = []

    @classmethod
    def launch(cls, extra_args: Sequence[str] = ()) -> _Launcher:
        return _Launcher(extra_args)

    async def publish(
        self,
        ws_url: str,
        room: int,
        display: str,
        *,
        codec: str = "vp8",
        simulcast: Sequence[Layer] = (),
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        audio: bool = True,
        bitrate: int = 3_000_000,
        start_kbps: int | None = 2_000,
        opus_dtx: bool = True,
        opus_fec: bool = True,
        within: float = 15.0,
    ) -> ChromiumPublisher:
        """Open a page, join ``room`` as a publisher and publish the fake camera (``codec``, with the
        ``simulcast`` layers if any) and microphone; returns once the PeerConnection is connected."""
        page = await self.browser.new_page()
        await page.route(
            "http://localhost/**",
            lambda route: route.fulfill(content_type="text/html", body="<title>publisher</title>"),
        )
        await page.goto(PAGE)
        client = JanusClient(ws_url, request_timeout=within, connect_timeout=within, ready_timeout=within)
        await client.connect()
        try:
            handle = await client.attach(VIDEOROOM_PLUGIN, opaque_id=f"chromium-{display}")
            joined = await handle.message(
                {"request": "join", "ptype": "publisher", "room": room, "display": display}
            )
            publisher_id = int(joined.data["id"])
            layers = [{"rid": x.rid, "scale": x.scale, "max_bitrate": x.max_bitrate} for x in simulcast]
            offer: str = await page.evaluate(
                JS_OFFER,
                {"audio": audio, "video": True, "width": width, "height": height, "fps": fps,
                 "codec": codec, "layers": layers},
            )  # fmt: skip
            answer = await handle.message(
                {"request": "publish", "display": display, "bitrate": bitrate},
                {"type": "offer", "sdp": offer},
            )
            if answer.jsep is None:
                raise RuntimeError(f"publish answered without JSEP: {answer.data}")
            sdp = munge_answer(answer.jsep["sdp"], start_kbps, opus_dtx, opus_fec)
            state = await page.evaluate(JS_ANSWER, {"type": "answer", "sdp": sdp})
            if state != "connected":
                raise RuntimeError(f"Chromium's PeerConnection did not connect: {state}")
        except BaseException:
            await client.close()
            await page.close()
            raise
        publisher = ChromiumPublisher(
            page, client, handle, publisher_id, display, offer, answer.jsep["sdp"],
            list(answer.data.get("streams", [])), time.time(),
        )  # fmt: skip
        self.publishers.append(publisher)
        return publisher

    async def close(self) -> None:
        for publisher in self.publishers:
            await publisher.leave()
        with contextlib.suppress(Exception):
            await self.browser.close()
        with contextlib.suppress(Exception):
            await self._playwright.stop()


class _Launcher:
    """``async with ChromiumBrowser.launch() as browser``: skips the test where Chromium cannot run."""

    def __init__(self, extra_args: Sequence[str]) -> None:
        self.extra_args = list(extra_args)
        self.browser: ChromiumBrowser | None = None

    async def __aenter__(self) -> ChromiumBrowser:
        import pytest

        reason = unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        playwright = await async_playwright().start()
        try:
            browser = await playwright.chromium.launch(
                executable_path=executable(), headless=True, args=[*ARGS, *self.extra_args], timeout=30_000
            )
        except PlaywrightError as exc:
            await playwright.stop()
            pytest.skip(f"headless Chromium cannot start here: {str(exc).splitlines()[0]}")
        self.browser = ChromiumBrowser(playwright, browser)
        return self.browser

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.browser is not None:
            await self.browser.close()


# -- fake devices ----------------------------------------------------------------------------------------


def fake_camera(path: Path, width: int, height: int, fps: int, seconds: float) -> Path:
    """An MJPEG file (concatenated JPEG pictures) for ``--use-file-for-fake-video-capture``: picture ``i``
    carries counter ``i`` (``frame_marks``, readable at any scale, so in every simulcast layer). Chromium
    plays it at 30 fps and starts over at its end."""
    import fractions

    import av
    import frame_marks

    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = fractions.Fraction(1, fps)
    encoder.options = {"q:v": "4"}
    with path.open("wb") as out:
        for i in range(round(seconds * fps)):
            image = frame_marks.render_yuv420(i, width, height)
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p").reformat(format="yuvj420p")
            frame.pts = i
            for packet in encoder.encode(frame):
                out.write(bytes(packet))
        for packet in encoder.encode(None):
            out.write(bytes(packet))
    return path


def fake_microphone(path: Path, seconds: float, tone_hz: float, on: float, off: float) -> Path:
    """A WAV file for ``--use-file-for-fake-audio-capture``: a tone for ``on`` seconds, then digital
    silence for ``off`` seconds, over and over (talk spurts and pauses, so Opus DTX has silence to skip)."""
    import wave

    import numpy as np

    rate = 48_000
    t = np.arange(round(seconds * rate)) / rate
    samples = 0.25 * np.sin(2 * np.pi * tone_hz * t)
    samples[(t % (on + off)) >= on] = 0.0
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def video_sections(sdp: str) -> list[str]:
    """The video m-sections of an SDP (for assertions on simulcast attributes)."""
    return [s for s in sdp.replace("\r\n", "\n").split("\nm=")[1:] if s.startswith("video")]


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, default=str)
