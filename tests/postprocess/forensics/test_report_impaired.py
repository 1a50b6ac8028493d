"""`callvault report` on a recording of impaired media: Debian's ffmpeg streams VP8 and Opus as RTP through
a UDP relay of the test's own (seeded loss, duplication, reordering and jitter; RTCP passed through) into a
RecordingSession that captures every packet (pcapng); the report's loss, duplicates, reordering and jitter
must be what the relay did, and its HTML and PDF must be whole and self-contained."""

from __future__ import annotations

import asyncio
import collections
import itertools
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
from media import encode_reference

from postprocess.forensics.report import make_report
from recorder.config import RecorderSettings
from recorder.models import Codec, StreamSpec
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow
SECONDS = 3.0
WINDOW = (10, 110)  # the relay impairs RTP packets with these indices only (not the first or last ones)


class Relay(asyncio.DatagramProtocol):
    """Forwards RTP to `target` with seeded impairments, in order but late by 0-25 ms; RTCP untouched."""

    def __init__(self, target: tuple[str, int], seed: int) -> None:
        self.target = target
        self.rng = random.Random(seed)
        self.transport: asyncio.DatagramTransport | None = None
        self.index = 0
        self.dropped = self.duplicated = self.reordered = 0
        self.held: bytes | None = None
        self.last_at = 0.0
        self.forwarded: list[tuple[float, int]] = []  # (send time, RTP timestamp) of each distinct packet
        self.sent: list[int] = []  # sequence numbers, in the order sent
        self.queue: collections.deque[tuple[float, list[bytes], bool]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) > 1 and 192 <= data[1] <= 223:  # RTCP (the sender reports): as it came
            self._send(data, record=False)
            return
        i = self.index
        self.index += 1
        copies = 1
        if WINDOW[0] <= i < WINDOW[1]:
            roll = self.rng.random()
            if roll < 0.04:
                self.dropped += 1
                return
            if roll < 0.07:
                copies = 2
                self.duplicated += 1
            elif roll < 0.10 and self.held is None:
                self.held = data
                return
        loop = asyncio.get_running_loop()
        at = max(
            self.last_at, loop.time() + (self.rng.uniform(0, 0.025) if WINDOW[0] <= i < WINDOW[1] else 0)
        )
        self.last_at = at
        held, self.held = self.held, None
        loop.call_at(
            at, self._burst, [data] * copies + ([held] if held is not None else []), held is not None
        )

    def _burst(self, packets: list[bytes], reordered: bool) -> None:
        self.reordered += reordered
        for n, p in enumerate(packets):
            self._send(p, record=n == 0 or (p is packets[-1] and reordered))

    def _send(self, data: bytes, record: bool) -> None:
        assert self.transport is not None
        self.transport.sendto(data, self.target)
        if not 192 <= data[1] <= 223:
            self.sent.append(int.from_bytes(data[2:4], "big"))
        if record:
            self.forwarded.append((time.time(), int.from_bytes(data[4:8], "big")))


def reorderings(seqs: list[int]) -> int:
    """Packets sent after one with a higher sequence number, not counting repeats (no wrap in a test)."""
    highest, seen, count = -1, set(), 0
    for seq in seqs:
        if seq < highest and seq not in seen:
            count += 1
        seen.add(seq)
        highest = max(highest, seq)
    return count


def rfc3550_jitter_ms(forwarded: list[tuple[float, int]], clock: int) -> float:
    j, worst = 0.0, 0.0
    for (r0, s0), (r1, s1) in itertools.pairwise(forwarded):
        d = (r1 - r0) * clock - (((s1 - s0) + (1 << 31)) % (1 << 32) - (1 << 31))
        j += (abs(d) - j) / 16
        worst = max(worst, j)
    return worst / clock * 1000


async def test_report_figures_match_what_the_relay_did(tmp_path: Path) -> None:
    if "capture" not in RecorderSettings.model_fields:
        pytest.skip("packet capture (recorder/capture) is not in this tree")
    refs = {c: encode_reference(c, tmp_path, SECONDS) for c in ("vp8", "opus")}
    folder = tmp_path / "rec"
    workers = MuxWorkers(1)
    session = RecordingSession(folder, RecorderSettings(segment_seconds=1.0, capture=True), workers)
    loop = asyncio.get_running_loop()
    relays: dict[str, Relay] = {}
    senders = []
    try:
        for n, (codec, c, clock) in enumerate((("vp8", Codec.VP8, 90000), ("opus", Codec.OPUS, 48000))):
            spec = StreamSpec(name=f"caller-{codec}", codec=c, payload_type=96 + n, clock_rate=clock,
                              channels=2 if codec == "opus" else 1, port=0, rtcp_port=0,
                              address="127.0.0.1")  # fmt: skip
            track = await session.add_track(spec)
            transport, relay = await loop.create_datagram_endpoint(
                lambda t=track.port, s=n: Relay(("127.0.0.1", t), seed=18 + s), local_addr=("127.0.0.1", 0)
            )
            relays[codec] = relay
            port = transport.get_extra_info("sockname")[1]
            senders.append(await asyncio.create_subprocess_exec(
                "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(refs[codec]), "-map", "0",
                "-c", "copy", "-strict", "experimental", "-payload_type", str(96 + n), "-f", "rtp",
                f"rtp://127.0.0.1:{port}?rtcpport={port}&pkt_size=1200",
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))  # fmt: skip
        for s in senders:
            await asyncio.wait_for(s.wait(), 60)
        await asyncio.sleep(0.5)
    finally:
        await session.stop()
        workers.shutdown()
    result = make_report(folder, tmp_path / "report")
    data = result.data
    assert data.has_capture
    for codec, relay in relays.items():
        (a,) = [t for t in data.tracks if t.track.name == f"caller-{codec}"]
        s = a.stats
        assert s is not None
        assert relay.dropped > 0 and relay.duplicated > 0 and relay.reordered > 0
        assert (s.lost, s.duplicates) == (relay.dropped, relay.duplicated), codec
        # Reordering as delivered: the relay's holds, and whatever else the way to it reordered (ffmpeg's
        # bursts sometimes reach the relay out of order on a loaded machine), counted on what it sent.
        assert s.reordered == reorderings(relay.sent) >= relay.reordered, codec
        assert s.loss_percent == pytest.approx(100 * relay.dropped / s.expected)
        expected_jitter = rfc3550_jitter_ms(relay.forwarded, a.track.clock_rate)
        assert s.jitter_ms_max == pytest.approx(expected_jitter, abs=4.0, rel=0.3), codec
        assert a.track.packets_lost == relay.dropped  # the live pipeline agrees
    html = result.html.read_text()
    for external in ("<script", "<link", "src=", 'href="http', "url(http", "@import"):  # nothing fetched
        assert external not in html, external
    assert html.count("<svg") >= 3 and "Integrity not checked" in html
    video = next(t.stats for t in data.tracks if t.track.name == "caller-vp8")
    assert video is not None and re.search(rf"<td>{video.lost}</td><td>{video.loss_percent:.2f}</td>", html)
    assert result.pdf is not None and result.pdf.read_bytes().startswith(b"%PDF")
