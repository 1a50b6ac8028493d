"""The stream pipeline on real VP8 frames (encoded by libvpx through PyAV), table-driven over what the
network does to packets: loss, reordering, duplicates, sequence and timestamp wraparound, garbage."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import pytest

from recorder.assembly.frame import Frame
from recorder.assembly.pipeline import SegmentStart, StreamPipeline
from recorder.models import Codec, StreamSpec
from recorder.rtp.packet import RtpPacket

CHUNK = 300
FRAMES = 40
GOP = 10


def pkt(sequence_number: int, timestamp: int, marker: bool, payload: bytes) -> RtpPacket:
    return RtpPacket(96, sequence_number, timestamp, 1, payload, marker)


@pytest.fixture(scope="module")
def vp8_frames() -> list[tuple[bytes, bool]]:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.time_base = Fraction(1, 30)
    enc.gop_size = GOP
    enc.options = {"deadline": "realtime", "cpu-used": "8", "kf-max-dist": str(GOP), "kf-min-dist": str(GOP)}
    enc.bit_rate = 800_000
    frames = []
    rng = np.random.default_rng(1)
    for i in range(FRAMES):
        img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        vf = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        frames.extend((bytes(p), bool(p.is_keyframe)) for p in enc.encode(vf))
    frames.extend((bytes(p), bool(p.is_keyframe)) for p in enc.encode(None))
    assert frames[0][1] and len(frames) == FRAMES
    return frames


def packetize(frames: list[tuple[bytes, bool]], seq0: int = 1000, ts0: int = 5000) -> list[RtpPacket]:
    """RFC 7741 packetization: descriptor with S=1, PID=0 on the first packet of each frame."""
    out = []
    seq = seq0
    for i, (data, _) in enumerate(frames):
        chunks = [data[j : j + CHUNK] for j in range(0, len(data), CHUNK)]
        for k, chunk in enumerate(chunks):
            descriptor = b"\x10" if k == 0 else b"\x00"
            ts = (ts0 + i * 3000) & 0xFFFFFFFF
            out.append(pkt(seq & 0xFFFF, ts, k == len(chunks) - 1, descriptor + chunk))
            seq += 1
    return out


def run(packets: list[RtpPacket]) -> tuple[list[Frame], StreamPipeline, list[SegmentStart]]:
    spec = StreamSpec(name="video-0", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=0)
    pipeline = StreamPipeline(spec, "webm", segment_seconds=0.5, reorder_packets=64, reorder_delay=10)
    requests = 0
    for i, p in enumerate(packets):
        pipeline.push(p, 1000.0 + i * 0.001)
        requests += pipeline.take_keyframe_request(1000.0 + i)
    pipeline.finish(2000.0)
    items = pipeline.take_output()
    frames = [x for x in items if isinstance(x, Frame)]
    starts = [x for x in items if isinstance(x, SegmentStart)]
    return frames, pipeline, starts


def frame_packets(packets: list[RtpPacket], frame_index: int) -> list[int]:
    """Indices (in `packets`) of the packets of one frame, found by timestamp."""
    ts = packets[0].timestamp
    target = (ts + frame_index * 3000) & 0xFFFFFFFF
    return [i for i, p in enumerate(packets) if p.timestamp == target]


Transform = Callable[[list[RtpPacket]], list[RtpPacket]]


def drop_in_frame(n: int) -> Transform:
    return lambda ps: [p for i, p in enumerate(ps) if i != frame_packets(ps, n)[-1]]


def swap_in_frame(n: int) -> Transform:
    def t(ps: list[RtpPacket]) -> list[RtpPacket]:
        a, b = frame_packets(ps, n)[:2]
        ps = list(ps)
        ps[a], ps[b] = ps[b], ps[a]
        return ps

    return t


def duplicate_every(k: int) -> Transform:
    return lambda ps: [q for i, p in enumerate(ps) for q in ([p, p] if i % k == 0 else [p])]


def garbage_in_frame(n: int) -> Transform:
    def t(ps: list[RtpPacket]) -> list[RtpPacket]:
        i = frame_packets(ps, n)[0]
        # X bit set, but the extension octet is missing: a malformed RFC 7741 descriptor.
        return [*ps[:i], pkt(ps[i].sequence_number, ps[i].timestamp, ps[i].marker, b"\x90"), *ps[i + 1 :]]

    return t


CASES: list[tuple[str, Transform, dict[str, object], list[int]]] = [
    # name, transform, packetize kwargs, frame indices expected out
    ("clean", lambda ps: ps, {}, list(range(FRAMES))),
    (
        "loss in a delta frame waits for the next keyframe",
        drop_in_frame(3),
        {},
        [0, 1, 2, *range(10, FRAMES)],
    ),
    ("loss in a keyframe drops its whole GOP", drop_in_frame(10), {}, [*range(10), *range(20, FRAMES)]),
    ("reordered packets inside a frame", swap_in_frame(5), {}, list(range(FRAMES))),
    ("duplicates", duplicate_every(3), {}, list(range(FRAMES))),
    ("sequence wraparound", lambda ps: ps, {"seq0": 65500}, list(range(FRAMES))),
    ("timestamp wraparound", lambda ps: ps, {"ts0": 2**32 - 3000 * 7}, list(range(FRAMES))),
    ("garbage payload in a delta frame", garbage_in_frame(4), {}, [0, 1, 2, 3, *range(10, FRAMES)]),
]


@pytest.mark.parametrize(("name", "transform", "kwargs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_frames_out_are_the_sent_frames(
    vp8_frames: list[tuple[bytes, bool]],
    name: str,
    transform: Transform,
    kwargs: dict[str, int],
    expected: list[int],
) -> None:
    sent = packetize(vp8_frames, **kwargs)
    frames, pipeline, starts = run(transform(sent))
    assert [f.data for f in frames] == [vp8_frames[i][0] for i in expected]
    assert [f.keyframe for f in frames] == [vp8_frames[i][1] for i in expected]
    # The track timeline follows the RTP timestamps exactly, across the 32-bit wrap too.
    assert [f.pts for f in frames] == [i * 3000 for i in expected]
    summary = pipeline.counters()
    assert summary.frames == len(expected)
    dropped = FRAMES - len(expected)
    assert summary.frames_dropped == dropped
    if dropped:
        assert summary.keyframe_requests >= 1 and summary.gaps
        # The first frame after the hole says how many packets went missing before it.
        after = expected.index(next(i for i in expected if i > 0 and i - 1 not in expected))
        assert frames[after].dropped_packets > 0
    # Segments start only at keyframes, and every keyframe after the segment length starts one.
    assert starts and all(s.width == 320 and s.height == 240 for s in starts)


def test_losses_are_counted(vp8_frames: list[tuple[bytes, bool]]) -> None:
    sent = packetize(vp8_frames)
    _, pipeline, _ = run(drop_in_frame(3)(sent))
    summary = pipeline.counters()
    assert summary.packets_lost == 1
    assert summary.packets_received == len(sent) - 1


def test_duplicates_and_late_packets_are_counted(vp8_frames: list[tuple[bytes, bool]]) -> None:
    sent = packetize(vp8_frames)
    _, pipeline, _ = run(duplicate_every(3)(sent))
    summary = pipeline.counters()
    assert summary.packets_duplicate + summary.packets_late == len(range(0, len(sent), 3))
    assert summary.packets_lost == 0


def test_stream_must_start_at_a_keyframe(vp8_frames: list[tuple[bytes, bool]]) -> None:
    sent = packetize(vp8_frames)
    first_of_frame_2 = frame_packets(sent, 2)[0]
    frames, pipeline, _ = run(sent[first_of_frame_2:])
    assert frames[0].data == vp8_frames[10][0] and frames[0].keyframe
    assert pipeline.counters().frames_dropped == 8


def test_sender_restart_reanchors_the_timeline(vp8_frames: list[tuple[bytes, bool]]) -> None:
    first = packetize(vp8_frames[:20], seq0=100, ts0=1000)
    second = packetize(vp8_frames[20:], seq0=30000, ts0=999_999)  # new sequence and timestamp bases
    spec = StreamSpec(name="v", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=0)
    pipeline = StreamPipeline(spec, "webm", segment_seconds=0.5)
    for i, p in enumerate(first):
        pipeline.push(p, 1000.0 + i * 0.001)
    for i, p in enumerate(second):
        pipeline.push(p, 1010.0 + i * 0.001)  # 10 s later
    pipeline.finish(1020.0)
    items = pipeline.take_output()
    frames = [x for x in items if isinstance(x, Frame)]
    assert len(frames) == FRAMES
    # The ~10 s gap stays visible: the timeline is re-anchored on the wall clock of arrival.
    assert frames[20].pts == round((frames[20].arrival_time - frames[0].arrival_time) * 90000)
    assert frames[20].pts > 9.5 * 90000
    assert all(b.pts > a.pts for a, b in itertools.pairwise(frames))
    assert isinstance(items[items.index(frames[20]) - 1], SegmentStart)
    assert [g.reason for g in pipeline.counters().gaps] == ["restart"]
