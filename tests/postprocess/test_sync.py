"""Synchronization proof, by analysing the composite itself: every participant flashes white and beeps
at the same instants (each with its own pitch); in the composite every flash in a tile must coincide with
that participant's beep in the mix within 40 ms.

- A real call: two publishers encoded by Debian's ffmpeg, each streamed as RTP (audio and video from one
  sender process) into a real RecordingSession; the second joins 1.3 s later, and the first one's video
  starts 0.5 s after its audio, so no two files start together. Timing comes from ingest only.
- A synthetic 10-minute call: track files and summaries as the recorder writes them, media present in
  the first seconds and the last ten, timestamps advanced in between; audio clocks drift (+100 ppm and
  -80 ppm) and the RTCP sender reports say so. The last ten seconds are composed: in sync with the SRs,
  out of sync (beyond 40 ms) without them, which shows the refinement is what keeps a long call in sync.

The composites are made at 50 fps so that a frame boundary adds at most 20 ms to the measured offset.
"""

from __future__ import annotations

import math
from pathlib import Path

import av
import pytest
from composite_kit import (
    ALICE,
    BOB,
    Call,
    SyntheticParticipant,
    audio_mono,
    flash_onsets,
    pair_offsets,
    tone_onsets,
    video_luma,
    write_synthetic_call,
)

from postprocess.composite import build_composite
from postprocess.options import CompositeOptions, CompositeResult, OutputFormat
from recorder.models import TrackSummary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
TOLERANCE = 0.040
W, H = 640, 360
LEFT = (W // 8, H // 3, W // 4, H // 3)  # inside the first tile whether it is alone or side by side
RIGHT = (5 * W // 8, H // 3, W // 4, H // 3)


def offsets(result: CompositeResult, tones: dict[str, int]) -> dict[str, list[float]]:
    """Per participant: flash minus nearest beep, for every flash in its tile while its tile is shown."""
    regions = dict(zip(tones, (LEFT, RIGHT), strict=False))
    times, luma = video_luma(result.path, regions)
    samples, rate = audio_mono(result.path)
    spans = {p.id: p for p in result.participants}
    out = {}
    for pid, hz in tones.items():
        flashes = flash_onsets(times, luma[pid], after=spans[pid].start + 0.05)
        beeps = tone_onsets(samples, rate, hz)
        assert flashes and beeps, (pid, flashes, beeps)
        out[pid] = pair_offsets(flashes, beeps)
    return out


@pytest.mark.parametrize("fmt", [OutputFormat.MP4, OutputFormat.WEBM])
def test_real_call_flashes_coincide_with_beeps(call: Call, tmp_path: Path, fmt: OutputFormat) -> None:
    s = call.summaries
    assert s["alice-video-0"].first_wallclock - s["alice-audio-1"].first_wallclock > 0.4  # type: ignore[operator]
    assert s["bob-audio-1"].first_wallclock - s["alice-audio-1"].first_wallclock > 1.0  # type: ignore[operator]
    options = CompositeOptions(
        layout="side-by-side", profile="sd", fps=50, format=fmt, out=tmp_path / f"c.{fmt}"
    )
    result = build_composite(call.folder, options)
    assert [p.id for p in result.participants] == ["alice", "bob"]
    assert result.participants[1].start == pytest.approx(BOB.start_delay, abs=0.25)  # the late joiner's tile
    found = offsets(result, {"alice": ALICE.tone, "bob": BOB.tone})
    assert len(found["alice"]) >= 4 and len(found["bob"]) >= 3, found
    for pid, values in found.items():
        assert max(abs(v) for v in values) <= TOLERANCE, (pid, values, result.sync)


PARTS = [
    SyntheticParticipant("agent", 1000, start=0.0, phase=0.0, audio_drift_ppm=100, sender_skew=1234.5,
                         video_delay=0.006),
    SyntheticParticipant("customer", 2500, start=0.5, phase=0.4, audio_drift_ppm=-80, sender_skew=-77.25),
]  # fmt: skip


def strip_sender_reports(folder: Path) -> None:
    for path in folder.glob("*.json"):
        summary = TrackSummary.model_validate_json(path.read_bytes())
        summary.rtcp_sender_reports = []
        path.write_text(summary.model_dump_json())


def test_ten_minute_call_stays_in_sync_at_its_end(tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    write_synthetic_call(folder, PARTS, windows=[(0.0, 4.0), (590.0, 600.0)], call_seconds=600.0)
    options = CompositeOptions(
        layout="side-by-side", profile="sd", fps=50, start=589.0, out=tmp_path / "c.mp4"
    )
    result = build_composite(folder, options)
    assert set(result.sync.values()) == {"rtcp"}
    found = offsets(result, {"agent": 1000, "customer": 2500})
    for pid, values in found.items():
        assert len(values) >= 9, (pid, values)
        assert max(abs(v) for v in values) <= TOLERANCE, (pid, values)

    strip_sender_reports(folder)  # arrival alone: the drift of ten minutes shows
    drifted = offsets(build_composite(folder, options), {"agent": 1000, "customer": 2500})
    assert all(max(abs(v) for v in values) > TOLERANCE for values in drifted.values()), drifted


def test_video_in_parts_is_one_stream_in_sync(
    call: Call, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import postprocess.composite

    monkeypatch.setattr(postprocess.composite, "MIN_PART", 2.0)  # the call is 6 s: parts of 3 s
    options = CompositeOptions(
        layout="side-by-side", profile="sd", fps=50, parallel=2, out=tmp_path / "p.mp4"
    )
    result = build_composite(call.folder, options)
    assert result.parts == 2
    with av.open(str(result.path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == result.video_frames == math.ceil(result.duration * 50 - 1e-9)  # every frame
    found = offsets(result, {"alice": ALICE.tone, "bob": BOB.tone})
    assert len(found["alice"]) >= 4 and len(found["bob"]) >= 3, found
    for pid, values in found.items():
        assert max(abs(v) for v in values) <= TOLERANCE, (pid, values)
