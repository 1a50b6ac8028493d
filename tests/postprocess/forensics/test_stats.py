"""The report's network figures from synthetic packet lists whose loss, duplication, reordering, jitter and
clock drift are known exactly (seeded), checked against RFC 3550's definitions."""

from __future__ import annotations

import random

import pytest

from postprocess.forensics.capture import keyframe_start
from postprocess.forensics.stats import RtpSample, analyze, extend_sequence, interarrival_jitter
from postprocess.forensics.sync import NTP_UNIX_OFFSET, av_offset, clock_drift
from recorder.models import Codec

CLOCK = 48000
PTIME = 0.02


def sent(n: int, start_seq: int = 1000, t0: float = 1_800_000_000.0) -> list[RtpSample]:
    """n audio packets, 20 ms apart, sent at t0 + i * 20 ms, arriving with no delay."""
    return [
        RtpSample(
            arrival=t0 + i * PTIME, seq=(start_seq + i) & 0xFFFF, timestamp=(i * 960) & 0xFFFFFFFF, size=100
        )
        for i in range(n)
    ]


def impair(packets: list[RtpSample], seed: int) -> tuple[list[RtpSample], dict[str, int]]:
    """What a relay with seeded loss (3 %), duplication (2 %) and reordering (2 %: a packet held back
    behind the next one) does; returns the packets in arrival order and the counts it caused."""
    rng = random.Random(seed)
    out: list[RtpSample] = []
    counts = {"dropped": 0, "duplicated": 0, "reordered": 0}
    held: RtpSample | None = None
    for p in packets[:-1]:
        roll = rng.random()
        if roll < 0.03:
            counts["dropped"] += 1
            continue
        if roll < 0.05:
            out += [p, p]
            counts["duplicated"] += 1
        elif roll < 0.07 and held is None:
            held = p
            continue
        else:
            out.append(p)
        if held is not None:
            out.append(held)  # arrives after a later packet
            counts["reordered"] += 1
            held = None
    if held is not None:
        out.append(held)
        counts["reordered"] += 1
    out.append(packets[-1])
    return out, counts


def test_a_clean_stream_has_no_loss_and_no_jitter() -> None:
    s = analyze(sent(500), CLOCK, video=False)
    assert (s.packets, s.lost, s.duplicates, s.reordered) == (500, 0, 0, 0)
    assert (
        s.expected == 500 and s.loss_percent == 0.0 and s.jitter_ms_max < 0.001
    )  # µs: float precision of Unix times
    assert sum(s.lost_per_bin) == 0 and s.bitrate_kbps[1] == pytest.approx(50 * 100 * 8 / 1000)


@pytest.mark.parametrize("seed", [1, 2, 3, 18])
def test_seeded_loss_duplication_and_reordering_are_counted_exactly(seed: int) -> None:
    packets, did = impair(sent(3000, start_seq=65000), seed)  # the sequence numbers wrap around
    s = analyze(packets, CLOCK, video=False)
    assert s.expected == 3000
    assert s.lost == did["dropped"] and sum(s.lost_per_bin) == did["dropped"]
    assert s.duplicates == did["duplicated"]
    assert s.reordered == did["reordered"]
    assert s.loss_percent == pytest.approx(100 * did["dropped"] / 3000)
    assert sum(e.packets for e in s.loss_events) == did["dropped"]


def test_jitter_follows_rfc_3550() -> None:
    # Delays alternating 0 and 10 ms: every |D| is 10 ms, so J converges to 10 ms (A.8: J += (|D|-J)/16).
    packets = [
        RtpSample(arrival=i * PTIME + (0.01 if i % 2 else 0.0), seq=i, timestamp=i * 960, size=100)
        for i in range(400)
    ]
    s = analyze(packets, CLOCK, video=False)
    assert s.jitter_ms == pytest.approx(10.0, abs=0.01)
    # Uniform random delays in [0, 30) ms: E|D| = 30/3 = 10 ms.
    rng = random.Random(7)
    packets = [
        RtpSample(arrival=i * PTIME + rng.uniform(0, 0.03), seq=i, timestamp=i * 960, size=100)
        for i in range(20000)
    ]
    s = analyze(packets, CLOCK, video=False)
    assert s.jitter_ms_mean == pytest.approx(10.0, rel=0.08)


def test_jitter_by_hand_on_three_packets() -> None:
    arrivals = [0.0, 0.030, 0.050]  # transit 0, +10 ms, +10 ms
    j = interarrival_jitter(__import__("numpy").array(arrivals), [0, 960, 1920], CLOCK)
    assert j.tolist() == pytest.approx([0.0, 480 / 16, 480 / 16 + (0 - 480 / 16) / 16])


def test_sequence_numbers_unwrap_forward_and_back() -> None:
    assert extend_sequence([65534, 65535, 0, 1, 65535, 2]).tolist() == [
        65534,
        65535,
        65536,
        65537,
        65535,
        65538,
    ]


def test_video_frame_rate_and_keyframes_per_second() -> None:
    packets = []
    for frame in range(90):  # 30 fps, 3 packets a frame, a keyframe every second
        for k in range(3):
            packets.append(
                RtpSample(arrival=10.0 + frame / 30 + k * 0.001, seq=frame * 3 + k, timestamp=frame * 3000,
                          size=1000, marker=k == 2, keyframe_start=frame % 30 == 0 and k == 0)
            )  # fmt: skip
    s = analyze(packets, 90000, video=True)
    assert s.fps == [30.0, 30.0, 30.0]
    assert s.keyframes == pytest.approx([10.0, 11.0, 12.0])
    assert s.bitrate_kbps[0] == pytest.approx(90 * 1000 * 8 / 1000)


def ntp(unix: float) -> int:
    return round((unix + NTP_UNIX_OFFSET) * 2**32)


def test_sender_clock_drift_in_ppm() -> None:
    # An RTP clock running 100 ppm fast: after 1000 s it is 100 ms ahead of the wall clock.
    reports = [(ntp(1e9 + t), round(t * 90000 * (1 + 100e-6))) for t in range(0, 1001, 5)]
    drift = clock_drift(reports, 90000)
    assert drift.ppm == pytest.approx(100.0, abs=0.5)
    assert drift.offset_ms[-1] == pytest.approx(100.0, abs=0.1)
    assert clock_drift(reports[:1], 90000).ppm is None


def test_av_offset_from_sender_reports() -> None:
    # The recording places video 80 ms later than the audio captured at the same instant.
    t0 = 1_800_000_000.0
    audio = [(ntp(t0 + t), t * 48000) for t in range(0, 60, 5)]
    video = [(ntp(t0 + t), t * 90000) for t in range(0, 60, 5)]
    series = av_offset(audio, 48000, t0 + 0.050, video, 90000, t0 + 0.130)
    assert series.offset_ms == pytest.approx([80.0] * 12, abs=0.01)


def test_keyframe_starts_by_codec() -> None:
    assert keyframe_start(Codec.VP8, bytes([0x10, 0x00, 0x9D]))  # S=1, PID 0, P=0
    assert not keyframe_start(Codec.VP8, bytes([0x10, 0x01]))  # P=1: an interframe
    assert not keyframe_start(Codec.VP8, bytes([0x00, 0x00]))  # not a partition start
    assert keyframe_start(Codec.VP8, bytes([0x90, 0x80, 0x12, 0x00]))  # X, I, 7-bit PictureID
    assert keyframe_start(Codec.H264, bytes([0x65, 0x88]))  # IDR
    assert keyframe_start(Codec.H264, bytes([0x7C, 0x85]))  # FU-A start of an IDR
    assert not keyframe_start(Codec.H264, bytes([0x7C, 0x05]))  # FU-A continuation
    assert keyframe_start(
        Codec.H264, bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE])
    )  # STAP-A SPS
    assert not keyframe_start(Codec.OPUS, b"\x78")


def test_packets_missing_across_a_pause_are_paused_not_lost() -> None:
    packets = sent(500)
    t0 = packets[0].arrival
    kept = [p for i, p in enumerate(packets) if not 100 <= i < 200 and i != 300]  # paused, then one lost
    s = analyze(kept, CLOCK, video=False, pauses=[(t0 + 99.5 * PTIME, t0 + 199.5 * PTIME)])
    assert (s.paused, s.lost, s.expected) == (100, 1, 400)
