"""A WebRTC publisher for the demo: aiortc joins a Janus VideoRoom and sends a moving test picture (VP8)
and a tone (Opus), then leaves. Needs the `demo` extra (aiortc).

    python -m recorder.demo.publisher --ws ws://127.0.0.1:8188 --room 1234 --display Alice --seconds 8 \\
        --ice-address 10.200.0.1

Non-trickle (the offer goes once ICE gathering is complete), ICE pinned to `--ice-address`, no STUN. It
prints one JSON object per line: {"event": "published", "id": ...}, {"event": "connected"}, and at the end
{"event": "done", "id": ..., "frames": N, "audio_frames": M}. SIGTERM/SIGINT end it early (it still leaves).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import signal
import sys
import time
import zlib
from collections.abc import Sequence
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient

VIDEO_CLOCK, AUDIO_RATE, PTIME = 90_000, 48_000, 0.02


def picture(index: int, width: int, height: int, display: str) -> np.ndarray:
    """A yuv420p frame (as one (h*3/2, w) plane array): a tint per publisher and a bar that moves."""
    h = zlib.crc32(display.encode())
    luma = np.full((height, width), 60 + (h & 0x3F), dtype=np.uint8)
    x = (index * 4) % width
    luma[:, x : x + 16] = 235
    y = (index * 2) % height
    luma[y : y + 8, :] = 200
    chroma_u = np.full((height // 2, width // 2), 64 + (h & 0x7F), dtype=np.uint8)
    chroma_v = np.full((height // 2, width // 2), 64 + ((h >> 8) & 0x7F), dtype=np.uint8)
    return np.concatenate([luma, chroma_u.reshape(height // 4, width), chroma_v.reshape(height // 4, width)])


def _tracks(
    seconds: float, fps: float, width: int, height: int, display: str, tone: float
) -> tuple[Any, Any]:
    frames, chunks = max(1, round(seconds * fps)), math.ceil(seconds / PTIME)

    class Video(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.started: float | None = None
            self.done = asyncio.Event()

        async def recv(self) -> av.VideoFrame:
            if self.sent >= frames or self.readyState != "live":
                self.done.set()
                self.stop()
                raise MediaStreamError
            now = time.monotonic()
            self.started = self.started or now
            delay = self.started + self.sent / fps - now
            if delay > 0:
                await asyncio.sleep(delay)
            frame = av.VideoFrame.from_ndarray(picture(self.sent, width, height, display), format="yuv420p")
            frame.pts = round(self.sent * VIDEO_CLOCK / fps)
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
            self.sent += 1
            return frame

    class Tone(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.started: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.sent >= chunks or self.readyState != "live":
                self.stop()
                raise MediaStreamError
            now = time.monotonic()
            self.started = self.started or now
            delay = self.started + self.sent * PTIME - now
            if delay > 0:
                await asyncio.sleep(delay)
            samples = int(AUDIO_RATE * PTIME)
            n = np.arange(self.sent * samples, (self.sent + 1) * samples)
            wave = (0.3 * np.sin(2 * math.pi * tone * n / AUDIO_RATE) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self.sent * samples
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            self.sent += 1
            return frame

    return Video(), Tone()


@contextlib.contextmanager
def pinned_ice(address: str | None) -> Any:
    """aioice gathers host candidates on `address` only."""
    if address is None:
        yield
        return
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


async def publish(args: argparse.Namespace, stop: asyncio.Event) -> dict[str, Any]:
    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    video, audio = _tracks(args.seconds, args.fps, args.width, args.height, args.display, args.tone)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    wait = args.connect_timeout
    client = JanusClient(args.ws, request_timeout=wait, connect_timeout=wait, ready_timeout=wait)
    publisher_id = 0
    try:
        with pinned_ice(args.ice_address):
            await client.connect()
            handle = await client.attach(VIDEOROOM_PLUGIN, opaque_id=f"demo-{args.display}")
            joined = await handle.message(
                {"request": "join", "ptype": "publisher", "room": args.room, "display": args.display}
            )
            publisher_id = int(joined.data["id"])
            audio_tr = pc.addTransceiver(audio, direction="sendonly")
            video_tr = pc.addTransceiver(video, direction="sendonly")
            opus = [
                c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"
            ]
            audio_tr.setCodecPreferences(opus)
            vp8 = [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType.lower() in ("video/vp8", "video/rtx")
            ]
            video_tr.setCodecPreferences(vp8)
            await pc.setLocalDescription(await pc.createOffer())
            offer = pc.localDescription
            answer = await handle.message(
                {"request": "publish", "display": args.display}, {"type": offer.type, "sdp": offer.sdp}
            )
            if answer.jsep is None:
                raise RuntimeError(f"publish answered without JSEP: {answer.data}")
            emit({"event": "published", "id": publisher_id, "display": args.display})
            await pc.setRemoteDescription(RTCSessionDescription(answer.jsep["sdp"], answer.jsep["type"]))
            deadline = time.monotonic() + wait
            while pc.connectionState != "connected" and not stop.is_set():
                if time.monotonic() > deadline or pc.connectionState in ("failed", "closed"):
                    raise RuntimeError(f"PeerConnection did not connect: {pc.connectionState}")
                await asyncio.sleep(0.02)
            emit({"event": "connected", "id": publisher_id})
            waits = [asyncio.ensure_future(video.done.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=args.seconds + wait, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            video.stop()
            audio.stop()
            if not stop.is_set():
                await asyncio.sleep(0.3)  # the last packets (and retransmissions) get through
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.message({"request": "leave"}), 2.0)
    finally:
        video.stop()
        audio.stop()
        with contextlib.suppress(Exception):
            await pc.close()
        with contextlib.suppress(Exception):
            await client.close()
    return {"event": "done", "id": publisher_id, "frames": video.sent, "audio_frames": audio.sent}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ws", required=True, help="Janus WebSocket API URL")
    parser.add_argument("--room", type=int, required=True)
    parser.add_argument("--display", default="publisher")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--tone", type=float, default=440.0)
    parser.add_argument("--ice-address", help="gather ICE candidates on this address only")
    parser.add_argument("--connect-timeout", type=float, default=15.0)
    args = parser.parse_args(argv)

    async def run() -> dict[str, Any]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await publish(args, stop)

    done = asyncio.run(run())
    print(json.dumps(done), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
