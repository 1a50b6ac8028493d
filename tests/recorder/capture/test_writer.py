"""A track's capture: segments that open alone, hashed as listed, pauses absent and marked, and after a
crash valid up to the last whole block."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.capture.reader import complete_length, parse
from recorder.capture.recovery import recover_captures
from recorder.capture.replay import read_capture_file, settings_of, spec_of
from recorder.capture.writer import CaptureFile, PacketCapture
from recorder.config import RecorderSettings
from recorder.models import Codec, SegmentInfo, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession

SPEC = StreamSpec(
    name="alice-video-1", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=20000, rtcp_port=20001
)
FORWARDER = ("10.0.0.5", 40012)


def rtp(seq: int, ts: int, payload: bytes = b"\x10\x00\x9d\x01\x2a") -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, ts, 0xCAFE) + payload


def sender_report() -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, 0xCAFE, 1, 2, 3, 4, 5)


def test_segments_open_alone_and_are_listed_with_their_hash(tmp_path: Path) -> None:
    capture = PacketCapture(SPEC, 1.0, ("10.0.0.9", 20000), ("10.0.0.9", 20001), ["recording r1"])
    file = CaptureFile(tmp_path, SPEC.name, capture.header)
    t0 = 1_764_540_000.0
    for i in range(90):  # 3 s at 30 packets/s: three segments
        capture.rtp(rtp(i, 3000 * i), FORWARDER, t0 + i / 30)
        if i % 30 == 5:
            capture.rtcp(sender_report(), (FORWARDER[0], FORWARDER[1] + 1), t0 + i / 30)
        if i % 7 == 0:
            file.write(capture.take())  # ticks fall anywhere
    file.write(capture.take())
    segments = file.close()
    assert [s.index for s in segments] == [0, 1, 2]
    packets = []
    for segment in segments:
        path = tmp_path / segment.path
        data = path.read_bytes()
        assert segment.size == len(data) and segment.sha256 == hashlib.sha256(data).hexdigest()
        parsed = parse(data)
        assert spec_of(parsed) == SPEC
        assert settings_of(parsed) == RecorderSettings()  # not recorded here: the defaults
        assert "recording r1" in parsed.comments
        # Every segment names the forwarder it came from.
        forwarders = [json.loads(e.comment.split(" ", 2)[2]) for e in parsed.events]
        assert {"socket": "rtp", "source": "10.0.0.5:40012", "local": "10.0.0.9:20000"} in forwarders
        rtp_packets = [d for d in parsed.datagrams if d.interface == 0]
        assert segment.first_rtp_timestamp == int.from_bytes(rtp_packets[0].payload[4:8], "big")
        assert segment.last_rtp_timestamp == int.from_bytes(rtp_packets[-1].payload[4:8], "big")
        packets += parsed.datagrams
    assert [d.payload for d in packets if d.interface == 0] == [rtp(i, 3000 * i) for i in range(90)]
    assert [d.source for d in packets if d.interface == 1] == [("10.0.0.5", 40013)] * 3
    assert all(d.destination == ("10.0.0.9", 20001) for d in packets if d.interface == 1)
    # Arrival times to the nanosecond the float allows.
    assert packets[0].time_ns == pytest.approx(t0 * 1e9, abs=1000)


def test_a_pause_is_absent_and_marked_with_who_and_why(tmp_path: Path) -> None:
    capture = PacketCapture(SPEC, 60.0, ("10.0.0.9", 20000), None)
    file = CaptureFile(tmp_path, SPEC.name, capture.header)
    t0 = 1_764_540_000.0
    capture.rtp(rtp(1, 0), FORWARDER, t0)
    capture.pause(t0 + 1, "agent-7", "card number")
    capture.rtcp(sender_report(), FORWARDER, t0 + 1.5)  # RTCP of the paused interval: dropped
    capture.resume(t0 + 2)
    capture.rtp(rtp(90, 180000), FORWARDER, t0 + 2.1)
    file.write(capture.take())
    (segment,) = file.close()
    parsed = parse((tmp_path / segment.path).read_bytes())
    assert [d.payload for d in parsed.datagrams] == [rtp(1, 0), rtp(90, 180000)]
    marks = [(e.time_ns, e.comment) for e in parsed.events if "pause" in e.comment]
    assert marks == [
        (int((t0 + 1) * 1e9), 'callvault pause-start {"by": "agent-7", "reason": "card number"}'),
        (int((t0 + 2) * 1e9), "callvault pause-end {}"),
    ]


WRITER = """
import sys, time, struct
from pathlib import Path
from recorder.capture.writer import CaptureFile, PacketCapture
from recorder.models import Codec, StreamSpec
spec = StreamSpec(name="t", codec=Codec.OPUS, payload_type=111, clock_rate=48000, port=1)
capture = PacketCapture(spec, 3600.0, ("127.0.0.1", 1), None)
file = CaptureFile(Path(sys.argv[1]), "t", capture.header)
seq = 0
while True:
    for _ in range(50):
        packet = struct.pack("!BBHII", 0x80, 111, seq & 0xFFFF, seq * 960, 7) + bytes(seq % 200)
        capture.rtp(packet, ("127.0.0.1", 9), time.time())
        seq += 1
    file.write(capture.take())
    print(seq, flush=True)
"""


def test_a_segment_killed_mid_write_is_valid_up_to_its_last_whole_block(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    while int(proc.stdout.readline() or 0) < 5000:
        pass
    proc.kill()
    proc.wait(10)
    (path,) = (tmp_path / "t.capture").glob("*.pcapng")
    data = path.read_bytes()
    whole = complete_length(data)
    assert whole > len(data) - 2000
    recover_captures(tmp_path)
    repaired = parse(path.read_bytes())
    seqs = [int.from_bytes(d.payload[2:4], "big") for d in repaired.datagrams]
    assert len(seqs) >= 5000 and seqs == list(range(len(seqs)))
    # A partial last block, as a kill in the middle of a write would leave it, is cut off.
    with path.open("ab") as f:
        f.write(data[-37:-5])
    assert recover_captures(tmp_path) == [path]
    assert parse(path.read_bytes()).datagrams == repaired.datagrams
    # A segment with not even a whole header holds nothing: removed.
    stub = tmp_path / "t.capture" / "000001.pcapng"
    stub.write_bytes(data[:10])
    recover_captures(tmp_path)
    assert not stub.exists()


class Listener:
    def __init__(self) -> None:
        self.closed: list[tuple[str, SegmentInfo]] = []

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        self.closed.append((track, segment))

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        pass


async def until(predicate: object, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_session_announces_capture_segments_like_media_segments(tmp_path: Path) -> None:
    settings = RecorderSettings(segment_seconds=0.5, capture=True)
    workers = MuxWorkers(1)
    listener = Listener()
    session = RecordingSession(tmp_path / "rec", settings, workers, [listener])
    spec = StreamSpec(
        name="bob-audio-0", codec=Codec.OPUS, payload_type=111, clock_rate=48000, port=0, address="127.0.0.1"
    )
    track = await session.add_track(spec)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    try:
        opus = b"\xfc\xff\xfe"
        for seq in range(40):
            sender.sendto(
                struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 5) + opus, ("127.0.0.1", track.port)
            )
            await asyncio.sleep(0.02)
        await until(lambda: track.pipeline.summary.packets_received >= 40, 10)
        session.pause(by="agent-7", reason="card number")
        for seq in range(40, 50):
            sender.sendto(
                struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 5) + opus, ("127.0.0.1", track.port)
            )
        await until(lambda: track.pipeline.paused_packets >= 10, 10)
        session.resume()
        for seq in range(50, 60):
            sender.sendto(
                struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 5) + opus, ("127.0.0.1", track.port)
            )
        await until(lambda: track.pipeline.summary.packets_received >= 50, 10)
        await session.stop()
    finally:
        sender.close()
        workers.shutdown()
    captured = [s for t, s in listener.closed if t == "bob-audio-0.capture"]
    assert [s.index for s in captured] == list(range(len(captured))) and len(captured) >= 2
    media = [s for t, s in listener.closed if t == "bob-audio-0"]
    assert media  # the media's own chain is apart
    seqs, comments = [], []
    for segment in captured:
        capture = read_capture_file(tmp_path / "rec" / segment.path)
        assert hashlib.sha256((tmp_path / "rec" / segment.path).read_bytes()).hexdigest() == segment.sha256
        assert settings_of(capture).segment_seconds == 0.5
        seqs += [int.from_bytes(d.payload[2:4], "big") for d in capture.datagrams]
        comments += [e.comment for e in capture.events]
    assert seqs == [*range(40), *range(50, 60)]  # nothing of the pause
    assert 'callvault pause-start {"by": "agent-7", "reason": "card number"}' in comments
    assert "callvault pause-end {}" in comments
    on_disk = sorted(os.listdir(tmp_path / "rec" / "bob-audio-0.capture"))
    assert on_disk == [Path(s.path).name for s in captured]  # every segment announced, once
