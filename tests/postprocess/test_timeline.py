"""Track clocks from ingest timing: arrival, RTCP sender reports (position and rate), restarts."""

from __future__ import annotations

import pytest

from postprocess.timeline import NTP_UNIX_OFFSET, TrackTiming, ntp_to_unix, track_clocks

RECEIVER_T0 = 1_800_000_000.0
SENDER_SKEW = 1234.5  # the sender's wall clock is this far ahead of the recorder's


def ntp(unix: float) -> int:
    whole = int(unix)
    return ((whole + NTP_UNIX_OFFSET) << 32) | round((unix - whole) * 2**32)


def srs(
    clock_rate: int, drift_ppm: float, start: float, seconds: float, every: float = 5.0
) -> list[tuple[int, int]]:
    """SRs of a sender whose media clock runs `drift_ppm` fast, for media starting at sender time `start`."""
    out, t = [], every
    while t <= seconds:
        out.append((ntp(start + SENDER_SKEW + t), round(t * clock_rate * (1 + drift_ppm * 1e-6))))
        t += every
    return out


def test_ntp_conversion() -> None:
    assert ntp_to_unix(ntp(RECEIVER_T0 + 0.25)) == pytest.approx(RECEIVER_T0 + 0.25, abs=1e-9)


def test_arrival_only() -> None:
    clocks, warnings = track_clocks([TrackTiming("a-video-0", "a", 90000, RECEIVER_T0 + 2.0)])
    clock = clocks["a-video-0"]
    assert clock.source == "arrival" and not warnings
    assert clock.wall(3.0) == pytest.approx(RECEIVER_T0 + 5.0)
    assert clock.media(RECEIVER_T0 + 5.0) == pytest.approx(3.0)


def test_sender_reports_give_lip_sync_despite_late_first_video_frame() -> None:
    # Audio and video captured from the same instant; the first video frame arrived 120 ms late (a big
    # keyframe, a pacer). Arrival alone would put the video 120 ms late; the SRs put it right.
    audio = TrackTiming("a-audio-1", "a", 48000, RECEIVER_T0 + 0.010, srs(48000, 0, RECEIVER_T0, 30))
    video = TrackTiming("a-video-0", "a", 90000, RECEIVER_T0 + 0.130, srs(90000, 0, RECEIVER_T0, 30))
    clocks, warnings = track_clocks([audio, video])
    assert not warnings
    assert {c.source for c in clocks.values()} == {"rtcp"}
    for m in (0.0, 10.0, 29.0):
        assert clocks["a-video-0"].wall(m) == pytest.approx(clocks["a-audio-1"].wall(m), abs=1e-4)
    assert clocks["a-audio-1"].wall(0.0) == pytest.approx(RECEIVER_T0 + 0.010, abs=1e-4)


def test_ten_minutes_of_clock_drift_corrected_by_sender_reports() -> None:
    # The sender's audio clock runs 100 ppm fast: after 10 minutes its timestamps are 60 ms ahead.
    audio = TrackTiming("a-audio-1", "a", 48000, RECEIVER_T0, srs(48000, 100, RECEIVER_T0, 600))
    video = TrackTiming("a-video-0", "a", 90000, RECEIVER_T0, srs(90000, 0, RECEIVER_T0, 600))
    clocks, _ = track_clocks([audio, video])
    media_at_600 = 600 * (1 + 100e-6)  # the audio media time of the instant 600 s in
    assert clocks["a-audio-1"].wall(media_at_600) == pytest.approx(clocks["a-video-0"].wall(600.0), abs=1e-3)
    plain, _ = track_clocks([TrackTiming("a-audio-1", "a", 48000, RECEIVER_T0)])
    assert plain["a-audio-1"].wall(media_at_600) - (RECEIVER_T0 + 600) == pytest.approx(0.060, abs=1e-3)


def test_sender_reports_that_contradict_arrival_are_not_trusted() -> None:
    # A sender whose SRs put the video 2 s away from the audio, while both arrived together.
    audio = TrackTiming("a-audio-1", "a", 48000, RECEIVER_T0, srs(48000, 0, RECEIVER_T0, 30))
    video = TrackTiming("a-video-0", "a", 90000, RECEIVER_T0, srs(90000, 0, RECEIVER_T0 + 2.0, 30))
    clocks, warnings = track_clocks([audio, video])
    assert len(warnings) == 1 and "disagree" in warnings[0]
    assert {c.source for c in clocks.values()} == {"arrival"}
    assert clocks["a-video-0"].wall(1.0) == pytest.approx(RECEIVER_T0 + 1.0, abs=1e-6)


def test_participants_are_aligned_by_arrival_each_with_its_own_sender_clock() -> None:
    a = TrackTiming("a-audio-1", "a", 48000, RECEIVER_T0, srs(48000, 0, RECEIVER_T0, 20))
    b = TrackTiming("b-audio-1", "b", 48000, RECEIVER_T0 + 7.0, [(ntp(99.0 + 5.0), 5 * 48000)])
    clocks, _ = track_clocks([a, b])
    assert clocks["b-audio-1"].wall(0.0) == pytest.approx(RECEIVER_T0 + 7.0, abs=1e-6)


def test_restart_reanchors_on_arrival() -> None:
    restart = RECEIVER_T0 + 40.0
    t = TrackTiming("a-video-0", "a", 90000, RECEIVER_T0, srs(90000, 0, RECEIVER_T0, 60), restarts=(restart,))
    clock = track_clocks([t])[0]["a-video-0"]
    assert len(clock.pieces) == 2
    assert clock.wall(45.0) == pytest.approx(RECEIVER_T0 + 45.0, abs=1e-3)
