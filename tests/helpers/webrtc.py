"""A real WebRTC publisher for end-to-end tests: aiortc joins a Janus VideoRoom and sends synthetic video
whose every frame carries its counter (``frame_marks``) and a sine tone.

Non-trickle: the offer is sent once ICE gathering is complete. ICE is pinned to one address (the network
namespace's ``10.200.X.1``, see ``netns.py``) and no STUN server is used, so no packet leaves the namespace.
The video codec (VP8 or H.264) is chosen with codec preferences; Opus carries the tone. Frame ``i`` (from 0,
the first frame the encoder pulls, which is after ICE+DTLS are up) carries counter ``i``; the publisher
sends exactly ``round(seconds * fps)`` frames, then leaves the room and prints what it sent.

As a subprocess (how the e2e tests use it; run it inside the namespace with ``ip netns exec NS``)::

    python tests/helpers/webrtc.py --ws ws://127.0.0.1:8188 --room 1234 --display alice --codec vp8 \\
        --seconds 5 [--fps 30 --width 320 --height 240 --ice-address 10.200.0.1 --tone 440 \\
        --pattern black:60-90]

It prints one JSON object per line on stdout, flushed:
``{"event": "joined", "id": P, ...}``, ``{"event": "published", "id": P, "streams": [...] }``,
``{"event": "connected", "ice_seconds": ...}`` (ICE+DTLS up), ``{"event": "media", "first_frame": ...}``,
and at the end ``{"event": "done", "id": P, "frames": N, "counter_ranges": [[0, N-1]], "timings": {...}}``.
SIGTERM/SIGINT stop it early: it still leaves the room and prints ``done`` with what was actually sent.

From asyncio (the test side): ``PublisherProcess.start(...)`` runs that CLI and parses its events;
in-process (a thread already inside the namespace): ``await publish(PublisherOptions(...))``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import os
import signal
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script: frame_marks sits beside this file
    sys.path.insert(0, str(HERE))
SCRIPT = HERE / "webrtc.py"
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # janus_bridge without relying on the editable install
    sys.path.append(str(ROOT))

import frame_marks  # noqa: E402

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.02
CODECS = {"vp8": "video/VP8", "h264": "video/H264"}

Pattern = Callable[[int], np.ndarray | None]
"""Frame index -> a luma background (height x width, uint8) for that frame, or None for the usual picture.
The counter is stamped on top either way, so the recording still tells which frame it was."""


@dataclass
class PublisherOptions:
    ws_url: str
    room: int
    display: str
    codec: str = "vp8"
    seconds: float = 5.0
    fps: float = 30.0
    width: int = 320
    height: int = 240
    ice_address: str | None = None
    """Gather ICE host candidates on this address only (None: every non-loopback address)."""
    tone_hz: float = 440.0
    pattern: Pattern | None = None
    connect_timeout: float = 10.0
    linger: float = 0.3
    """Seconds to stay after the last frame so its packets (and retransmissions) get through."""

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {self.codec!r}")

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


@dataclass
class PublishResult:
    publisher_id: int
    counters: list[int]
    """Counter of every frame handed to the encoder, in order."""
    audio_frames: int
    timings: dict[str, float]
    """Seconds since the start for: joined, gathered, published, connected, first_frame, last_frame,
    janus_webrtcup (Janus's webrtcup event), janus_media_audio / janus_media_video (Janus receiving)."""
    streams: list[dict[str, Any]] = field(default_factory=list)
    """Janus's ``streams`` from the publish answer (type, mid, codec)."""


def tint(display: str) -> tuple[int, int]:
    """A (U, V) chroma derived from the display name, so publishers look different."""
    h = zlib.crc32(display.encode())
    return 64 + (h & 0x7F), 64 + ((h >> 8) & 0x7F)


def parse_pattern(specs: Sequence[str], width: int, height: int) -> Pattern | None:
    """CLI patterns ``KIND:START-END`` (frame indexes, inclusive), KIND in black, white, noise."""
    ranges: list[tuple[str, int, int]] = []
    for spec in specs:
        kind, _, span = spec.partition(":")
        start, _, end = span.partition("-")
        if kind not in ("black", "white", "noise") or not start.isdigit() or not end.isdigit():
            raise ValueError(f"bad pattern {spec!r}: expected black|white|noise:START-END")
        ranges.append((kind, int(start), int(end)))
    if not ranges:
        return None
    rng = np.random.default_rng(0)

    def pattern(index: int) -> np.ndarray | None:
        for kind, start, end in ranges:
            if start <= index <= end:
                if kind == "noise":
                    return rng.integers(0, 256, (height, width), dtype=np.uint8)
                value = frame_marks.BLACK if kind == "black" else frame_marks.WHITE
                return np.full((height, width), value, dtype=np.uint8)
        return None

    return pattern


# -- media tracks -----------------------------------------------------------------------------------------


def _tracks(options: PublisherOptions, clock: Callable[[], float]) -> tuple[Any, Any]:
    """The video and audio tracks (classes built lazily so importing this module does not need aiortc)."""
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class CounterVideoTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.counters: list[int] = []
            self.started: float | None = None
            self.first_frame: float | None = None
            self.last_frame: float | None = None
            self._chroma = tint(options.display)

        async def recv(self) -> av.VideoFrame:
            index = len(self.counters)
            if index >= options.frames or self.readyState != "live":
                self.stop()
                raise MediaStreamError
            now = time.monotonic()
            if self.started is None:
                self.started = now
                self.first_frame = clock()
            delay = self.started + index / options.fps - now
            if delay > 0:
                await asyncio.sleep(delay)
            background = options.pattern(index) if options.pattern is not None else None
            counter = index & frame_marks.MAX_COUNTER
            image = frame_marks.render_yuv420(
                counter, options.width, options.height, background, self._chroma
            )
            frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
            frame.pts = round(index * VIDEO_CLOCK / options.fps)
            frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
            self.counters.append(counter)
            self.last_frame = clock()
            return frame

    class ToneAudioTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.started: float | None = None
            self._samples = int(AUDIO_RATE * AUDIO_PTIME)
            self._limit = math.ceil(options.seconds / AUDIO_PTIME)

        async def recv(self) -> av.AudioFrame:
            index = self.sent
            if index >= self._limit or self.readyState != "live":
                self.stop()
                raise MediaStreamError
            now = time.monotonic()
            if self.started is None:
                self.started = now
            delay = self.started + index * AUDIO_PTIME - now
            if delay > 0:
                await asyncio.sleep(delay)
            n = np.arange(index * self._samples, (index + 1) * self._samples)
            wave = 0.3 * np.sin(2 * math.pi * options.tone_hz * n / AUDIO_RATE)
            samples = (wave * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = index * self._samples
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            self.sent += 1
            return frame

    return CounterVideoTrack(), ToneAudioTrack()


@contextlib.contextmanager
def pinned_ice(address: str | None) -> Iterator[None]:
    """Make aioice gather host candidates on ``address`` only (process-wide while active)."""
    if address is None:
        yield
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [address]  # type: ignore[assignment]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original  # type: ignore[assignment]


# -- publishing --------------------------------------------------------------------------------------------


async def publish(
    options: PublisherOptions,
    emit: Callable[[dict[str, Any]], None] = lambda event: None,
    stop: asyncio.Event | None = None,
) -> PublishResult:
    """Join ``options.room`` as a publisher, send ``options.frames`` frames and the tone, leave.

    ``emit(event)`` is called with each progress event (the CLI prints them); setting ``stop`` ends the
    publishing early (the result then holds what was sent so far).
    """
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient

    t0 = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - t0, 4)

    timings: dict[str, float] = {}
    stop = stop or asyncio.Event()
    video, audio = _tracks(options, clock)
    ended = asyncio.Event()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    wait = options.connect_timeout
    client = JanusClient(options.ws_url, request_timeout=wait, connect_timeout=wait, ready_timeout=wait)
    handle_id: list[int | None] = [None]

    def on_janus(message: dict[str, Any]) -> None:
        if message.get("sender") != handle_id[0]:
            return
        kind = message.get("janus")
        if kind == "webrtcup":
            timings.setdefault("janus_webrtcup", clock())
        elif kind == "media" and message.get("receiving"):
            timings.setdefault(f"janus_media_{message.get('type')}", clock())
        elif kind == "hangup":
            emit({"event": "hangup", "reason": message.get("reason")})
            ended.set()

    client.add_message_listener(on_janus)

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            timings.setdefault("connected", clock())
        elif pc.connectionState in ("failed", "closed"):
            ended.set()

    publisher_id = 0
    streams: list[dict[str, Any]] = []
    try:
        with pinned_ice(options.ice_address):
            await client.connect()
            handle = await client.attach(VIDEOROOM_PLUGIN, opaque_id=f"e2e-{options.display}")
            handle_id[0] = handle.handle_id
            joined = await handle.message(
                {"request": "join", "ptype": "publisher", "room": options.room, "display": options.display}
            )
            publisher_id = int(joined.data["id"])
            timings["joined"] = clock()
            emit({"event": "joined", "id": publisher_id, "room": options.room, "display": options.display})

            audio_tr = pc.addTransceiver(audio, direction="sendonly")
            video_tr = pc.addTransceiver(video, direction="sendonly")
            audio_codecs = RTCRtpSender.getCapabilities("audio").codecs
            audio_tr.setCodecPreferences([c for c in audio_codecs if c.mimeType.lower() == "audio/opus"])
            wanted = (CODECS[options.codec].lower(), "video/rtx")
            video_codecs = RTCRtpSender.getCapabilities("video").codecs
            video_tr.setCodecPreferences([c for c in video_codecs if c.mimeType.lower() in wanted])
            await pc.setLocalDescription(await pc.createOffer())  # returns once gathering is complete
            timings["gathered"] = clock()
            offer = pc.localDescription
            answer = await handle.message(
                {"request": "publish", "display": options.display},
                {"type": offer.type, "sdp": offer.sdp},
            )
            if answer.jsep is None:
                raise RuntimeError(f"publish answered without JSEP: {answer.data}")
            streams = list(answer.data.get("streams", []))
            timings["published"] = clock()
            emit({"event": "published", "id": publisher_id, "streams": streams})
            await pc.setRemoteDescription(RTCSessionDescription(answer.jsep["sdp"], answer.jsep["type"]))

            async def until(predicate: Callable[[], bool], within: float) -> bool:
                """Poll ``predicate`` until true, ``within`` s pass, the PC ends or ``stop`` is set."""
                deadline = time.monotonic() + within
                while not predicate():
                    if time.monotonic() > deadline or ended.is_set() or stop.is_set():
                        return predicate()
                    await asyncio.sleep(0.01)
                return True

            connected = await until(lambda: pc.connectionState == "connected", options.connect_timeout)
            if not connected and not stop.is_set():
                raise RuntimeError(f"PeerConnection did not connect: {pc.connectionState}")
            if connected:
                ice = round(timings["connected"] - timings["gathered"], 4)
                emit({"event": "connected", "ice_seconds": ice})
                if await until(lambda: video.first_frame is not None, options.connect_timeout):
                    timings["first_frame"] = video.first_frame or 0.0
                    emit({"event": "media", "first_frame": video.first_frame})
                await until(lambda: video.readyState == "ended", options.seconds + options.connect_timeout)
                video.stop()  # at once when stopped early
                audio.stop()
                if video.last_frame is not None:
                    timings["last_frame"] = video.last_frame
                if not stop.is_set():
                    await asyncio.sleep(options.linger)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.message({"request": "leave"}), 2.0)
    finally:
        video.stop()
        audio.stop()
        with contextlib.suppress(Exception):
            await pc.close()
        with contextlib.suppress(Exception):
            await client.close()
    return PublishResult(publisher_id, list(video.counters), audio.sent, timings, streams)


def counter_ranges(counters: Sequence[int]) -> list[list[int]]:
    """[[first, last], ...] runs of consecutive counters."""
    ranges: list[list[int]] = []
    for c in counters:
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return ranges


def expand_ranges(ranges: Sequence[Sequence[int]]) -> list[int]:
    return [c for first, last in ranges for c in range(first, last + 1)]


# -- the test side: the CLI as a subprocess ---------------------------------------------------------------


class PublisherProcess:
    """The CLI run as a subprocess (inside a namespace via ``ip netns exec``), its events parsed."""

    def __init__(self, proc: asyncio.subprocess.Process, args: list[str]) -> None:
        self.proc = proc
        self.args = args
        self.events: list[dict[str, Any]] = []
        self.stderr = b""
        self._changed = asyncio.Condition()
        self._readers = [
            asyncio.create_task(self._read_stdout(), name="publisher-stdout"),
            asyncio.create_task(self._read_stderr(), name="publisher-stderr"),
        ]

    @classmethod
    async def start(
        cls,
        ws_url: str,
        room: int,
        display: str,
        *,
        codec: str = "vp8",
        seconds: float = 5.0,
        fps: float = 30.0,
        width: int = 320,
        height: int = 240,
        ice_address: str | None = None,
        netns: str | None = None,
        patterns: Sequence[str] = (),
        extra: Sequence[str] = (),
    ) -> PublisherProcess:
        args = [sys.executable, str(SCRIPT), "--ws", ws_url, "--room", str(room)]
        args += ["--display", display, "--codec", codec, "--seconds", str(seconds), "--fps", str(fps)]
        args += ["--width", str(width), "--height", str(height)]
        if ice_address is not None:
            args += ["--ice-address", ice_address]
        for pattern in patterns:
            args += ["--pattern", pattern]
        args += list(extra)
        if netns is not None:
            args = ["ip", "netns", "exec", netns, *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        return cls(proc, args)

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = await self.proc.stderr.read()

    def find(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    async def event(self, name: str, within: float = 15.0) -> dict[str, Any]:
        """The first event called ``name``; RuntimeError if the process ends or ``within`` s pass first."""

        async def wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    found = self.find(name)
                    if found is not None:
                        return found
                    if self._readers[0].done():
                        raise RuntimeError(f"publisher ended without {name!r}: {self.describe()}")
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), within)
        except TimeoutError:
            raise RuntimeError(f"no {name!r} from the publisher in {within} s: {self.describe()}") from None

    async def finish(self, within: float = 30.0) -> dict[str, Any]:
        """Wait for the process to end; returns its ``done`` event (with ``counters`` expanded)."""
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"publisher still running after {within} s: {self.describe()}") from None
        await asyncio.gather(*self._readers, return_exceptions=True)
        done = self.find("done")
        if self.proc.returncode != 0 or done is None:
            raise RuntimeError(f"publisher failed: {self.describe()}")
        return {**done, "counters": expand_ranges(done["counter_ranges"])}

    def terminate(self) -> None:
        """SIGTERM: the publisher stops sending, leaves the room and prints ``done``."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    def describe(self) -> str:
        tail = self.stderr.decode(errors="replace")[-3000:]
        return f"rc={self.proc.returncode} events={self.events} stderr:\n{tail}"


# -- CLI ---------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ws", required=True, help="Janus WebSocket API URL (janus-protocol)")
    parser.add_argument("--room", type=int, required=True)
    parser.add_argument("--display", default="publisher")
    parser.add_argument("--codec", choices=sorted(CODECS), default="vp8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--ice-address", help="gather ICE candidates on this address only")
    parser.add_argument("--tone", type=float, default=440.0, help="tone frequency (Hz)")
    parser.add_argument("--pattern", action="append", default=[], help="black|white|noise:START-END")
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    options = PublisherOptions(
        ws_url=args.ws,
        room=args.room,
        display=args.display,
        codec=args.codec,
        seconds=args.seconds,
        fps=args.fps,
        width=args.width,
        height=args.height,
        ice_address=args.ice_address,
        tone_hz=args.tone,
        pattern=parse_pattern(args.pattern, args.width, args.height),
        connect_timeout=args.connect_timeout,
    )

    def emit(event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    async def run() -> PublishResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await publish(options, emit, stop)

    result = asyncio.run(run())
    emit(
        {
            "event": "done",
            "id": result.publisher_id,
            "codec": options.codec,
            "frames": len(result.counters),
            "counter_ranges": counter_ranges(result.counters),
            "audio_frames": result.audio_frames,
            "timings": result.timings,
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
