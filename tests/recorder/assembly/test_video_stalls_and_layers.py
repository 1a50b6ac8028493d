"""What the pipeline decides when a video track stops arriving, and what it says about picture sizes.

A simulcast publisher forwarded through Janus's simulcast context: when the layer being forwarded stops
(the sender turned it off, or its bandwidth estimate dropped it), Janus forwards nothing until a keyframe
of a lower layer arrives, and Janus 1.1 never asks for one on behalf of an RTP forwarder. So a video
track that stalls asks for a keyframe itself (a PLI, relayed by Janus to every layer), again while the
stall lasts (less and less often), and once more shortly after it resumed on a smaller picture (Janus may
have taken the lowest layer first). A track whose frames are just slow (a screen share at 2 fps) is not
stalled. The summary's ``layers`` lists the intervals of one picture size, which for a simulcast
publisher tells which layer each part of the recording came from.

Synthetic VP8 frames: one packet each, a keyframe header with the picture size or a delta frame.
"""

from __future__ import annotations

import itertools

from recorder.assembly.frame import Frame
from recorder.assembly.pipeline import StreamPipeline
from recorder.models import Codec, StreamSpec
from recorder.rtp.packet import RtpPacket

T0 = 1_000.0
FPS = 30


def pkt(sequence_number: int, timestamp: int, marker: bool, payload: bytes) -> RtpPacket:
    return RtpPacket(96, sequence_number, timestamp, 1, payload, marker)


def vp8(keyframe: bool, width: int = 1280, height: int = 720) -> bytes:
    """A one-packet VP8 payload: RFC 7741 descriptor (S=1, PID 0), then the frame."""
    if not keyframe:
        return b"\x10" + bytes([0x01, 0, 0]) + b"\x55" * 20
    size = width.to_bytes(2, "little") + height.to_bytes(2, "little")
    return b"\x10" + bytes([0x00, 0, 0]) + b"\x9d\x01\x2a" + size + b"\xaa" * 40


class Sender:
    """Feeds a pipeline one-packet frames and ticks it like the session's timer (every 50 ms)."""

    def __init__(self) -> None:
        spec = StreamSpec(name="video-1", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=0)
        self.pipeline = StreamPipeline(spec, "webm", segment_seconds=60, reorder_delay=0.05)
        self.seq = 100
        self.ts = 9_000
        self.now = T0
        self.requests: list[float] = []
        self.frames: list[Frame] = []
        self.keyframe_due = True
        self.size: tuple[int, int] | None = None

    def frame(self, keyframe: bool = False, width: int = 1280, height: int = 720) -> None:
        packet = pkt(self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, True, vp8(keyframe, width, height))
        self.pipeline.push(packet, self.now)
        self.seq += 1

    def run(self, seconds: float, fps: float = FPS, size: tuple[int, int] | None = (1280, 720)) -> None:
        """``seconds`` of time passing: frames at ``fps`` (none when ``size`` is None), a tick every 50 ms.
        A keyframe answers each keyframe request at once (as a sender does), and a new size starts with
        one (as the SFU switches layers)."""
        end = self.now + seconds
        next_frame = self.now
        next_tick = self.now
        while self.now < end - 1e-9:
            self.now = min(next_frame if size else end, next_tick, end)
            if size is not None and self.now >= next_frame - 1e-9:
                self.ts += round(90_000 / fps)
                self.frame(self.keyframe_due or size != self.size, *size)
                self.keyframe_due, self.size = False, size
                next_frame += 1 / fps
            if self.now >= next_tick - 1e-9:
                self.pipeline.tick(self.now)
                if self.pipeline.take_keyframe_request(self.now):
                    self.requests.append(round(self.now - T0, 3))
                    self.keyframe_due = True
                self.frames.extend(x for x in self.pipeline.take_output() if isinstance(x, Frame))
                next_tick += 0.05

    def requests_between(self, start: float, end: float) -> list[float]:
        return [t for t in self.requests if start <= t < end]


def test_a_stalled_video_track_asks_for_a_keyframe_soon_and_keeps_asking_less_often() -> None:
    s = Sender()
    s.run(1.0)
    asked_before = len(s.requests)  # the first keyframe (none here: the stream starts with one)
    s.run(10.0, size=None)  # the layer Janus forwarded stopped: nothing arrives
    stall = s.requests[asked_before:]
    assert stall, "a track that stopped never asked for a keyframe"
    last_frame = 1.0 - 1 / FPS
    assert 0.3 <= stall[0] - last_frame <= 0.45, stall
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(stall)]
    assert all(g >= 0.7 for g in gaps), gaps
    assert gaps[0] < 1.0 and gaps[-1] > 2.0, gaps  # soon at first, then less and less often
    assert len(stall) <= 10, stall
    assert s.pipeline.counters().keyframe_requests == len(s.requests)


def test_a_video_track_that_never_started_keeps_asking_for_its_first_keyframe() -> None:
    """Janus's simulcast forwarder sends nothing until a keyframe: one sent before the forwarder existed
    (recording turned on mid-call) is no use, and only a keyframe request brings the next."""
    s = Sender()
    s.run(6.0, size=None)
    first, *more = s.requests
    assert first == 0.0 and more and more[0] <= 0.6, s.requests
    assert all(0.55 <= b - a <= 0.9 for a, b in itertools.pairwise(more[:4])), s.requests
    assert 5 <= len(s.requests) <= 8, s.requests  # then less and less often
    s.run(2.0)
    assert s.frames and s.requests_between(6.1, 8.0) == []


def test_media_that_resumes_ends_the_stall_requests() -> None:
    s = Sender()
    s.run(1.0)
    s.run(0.6, size=None)
    s.run(3.0)
    # One request during the stall; the keyframe it brought resumed the track: nothing more.
    assert s.requests_between(1.0, 4.6) == s.requests_between(1.0, 1.6)
    assert len(s.requests_between(1.0, 1.6)) == 1


def test_a_slow_track_is_not_a_stall() -> None:
    """A screen share sends a frame a second when nothing moves: not a stall after the first seconds."""
    s = Sender()
    s.run(1.0)
    s.run(20.0, fps=1.0)
    assert len(s.requests_between(4.0, 21.0)) == 0, s.requests
    assert len(s.requests_between(1.0, 4.0)) <= 3, s.requests


def test_a_paused_track_never_asks() -> None:
    s = Sender()
    s.run(1.0)
    s.pipeline.pause(s.now)
    s.run(3.0, size=None)
    assert s.requests_between(1.0, 4.0) == []


def test_picture_sizes_are_listed_as_intervals_and_a_smaller_one_after_a_stall_is_probed() -> None:
    s = Sender()
    s.run(2.0)  # the top layer
    s.run(0.5, size=None)  # it stopped; Janus falls back after the keyframe asked for
    s.run(3.0, size=(640, 360))  # the middle layer
    s.run(2.0, size=(1280, 720))  # the top layer again (its own keyframe)
    s.pipeline.finish(s.now)
    summary = s.pipeline.counters()
    layers = [(x.width, x.height, round(x.frames, -1)) for x in summary.layers]
    assert layers == [(1280, 720, 60), (640, 360, 90), (1280, 720, 60)], summary.layers
    assert sum(x.frames for x in summary.layers) == summary.frames == len(s.frames)
    first, middle, last = summary.layers
    assert first.start_time == T0 and middle.start_time > first.end_time >= T0 + 1.9
    assert last.end_time == max(f.arrival_time for f in s.frames)
    assert all(x.end_time >= x.start_time for x in summary.layers)
    # The smaller picture after a stall: one more keyframe asked for about a second later, so Janus can
    # move up to the best layer being sent (it may have switched to the lowest one first).
    assert len(s.requests_between(2.0, 2.5)) == 1
    assert len(s.requests_between(3.0, 4.5)) == 1, s.requests
    assert len(s.requests_between(4.5, 7.5)) == 0, s.requests


def test_a_size_change_without_a_stall_is_not_probed() -> None:
    """An encoder that lowers its resolution (bandwidth, CPU) is followed without extra keyframes."""
    s = Sender()
    s.run(2.0)
    s.run(3.0, size=(960, 540))
    assert [(x.width, x.height) for x in s.pipeline.counters().layers] == [(1280, 720), (960, 540)]
    assert len(s.requests_between(2.1, 5.0)) == 0, s.requests


def test_audio_tracks_have_no_layers_and_no_stalls() -> None:
    spec = StreamSpec(name="audio-0", codec=Codec.OPUS, payload_type=111, clock_rate=48000, port=0)
    pipeline = StreamPipeline(spec, "webm")
    for i in range(10):
        pipeline.push(pkt(i, i * 960, True, b"\xfc\xff\xfe"), T0 + i * 0.02)
    for step in range(1, 60):
        pipeline.tick(T0 + step * 0.1)
        assert not pipeline.take_keyframe_request(T0 + step * 0.1)
    assert pipeline.counters().layers == []
