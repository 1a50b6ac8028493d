"""What goes wrong in real recordings gives a correct composite or a clear error, never a hang: lost
frames, a late joiner, a participant with audio only, pauses, damaged, truncated and unreadable files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from composite_kit import ALICE, BOB, Call, audio_mono, flash_onsets, tone_onsets, video_luma
from test_sync import LEFT, RIGHT, TOLERANCE, offsets

from postprocess.composite import build_composite
from postprocess.draw import SLATE_BG
from postprocess.options import CompositeError, CompositeOptions
from recorder.models import PauseInterval, TrackSummary
from recorder.recording import RecordingInfo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]
TONES = {"alice": ALICE.tone, "bob": BOB.tone}


def options(tmp_path: Path, **kw: object) -> CompositeOptions:
    return CompositeOptions(layout="side-by-side", profile="sd", fps=50, out=tmp_path / "c.mp4", **kw)  # type: ignore[arg-type]


def edit_summary(folder: Path, track: str, edit: Callable[[TrackSummary], None]) -> None:
    path = folder / f"{track}.json"
    summary = TrackSummary.model_validate_json(path.read_bytes())
    edit(summary)
    path.write_text(summary.model_dump_json())


def drop_packets(path: Path, start: float, end: float) -> int:
    """Rewrite a track file without its packets from `start` s up to the first keyframe at or after
    `end` s (as a receiver that lost them and waited for a keyframe). Returns how many were dropped."""
    tmp = path.with_name("lossy" + path.suffix)
    dropped, resumed = 0, False
    with av.open(str(path)) as src, av.open(str(tmp), "w", format="webm") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            t = float(packet.pts * packet.time_base)
            if start <= t and not resumed and not (t >= end and packet.is_keyframe):
                dropped += 1
                continue
            resumed = resumed or t >= end
            packet.stream = stream
            dst.mux(packet)
    tmp.replace(path)
    return dropped


def test_lost_frames_hold_the_picture_and_keep_sync(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    dropped = drop_packets(folder / "alice-video-0.webm", 2.3, 4.0)  # flashes at 2.5 and 3.5 lost
    assert dropped >= 40
    edit_summary(folder, "alice-video-0", lambda s: setattr(s, "frames", s.frames - dropped))
    result = build_composite(folder, options(tmp_path))
    found = offsets(result, TONES)
    assert len(found["alice"]) == 3 and max(abs(v) for v in found["alice"]) <= TOLERANCE, found
    times, luma = video_luma(result.path, {"alice": LEFT})
    gap = luma["alice"][(times > 2.9) & (times < 4.4)]
    assert gap.max() < 30  # the last (black) frame held, no slate, no flash


def test_participant_with_audio_only(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    for path in folder.glob("bob-video-0*"):
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
            path.rmdir()
        else:
            path.unlink()
    result = build_composite(folder, options(tmp_path))
    bob = next(p for p in result.participants if p.id == "bob")
    assert not bob.video
    times, luma = video_luma(result.path, {"bob": RIGHT})
    shown = luma["bob"][(times > bob.start + 0.1) & (times < bob.end - 0.1)]
    assert abs(float(np.median(shown)) - SLATE_BG[0]) < 25 and shown.max() - shown.min() < 5  # a slate
    samples, rate = audio_mono(result.path)
    assert len(tone_onsets(samples, rate, BOB.tone)) >= 3  # bob is heard
    assert max(abs(v) for v in offsets(result, {"alice": ALICE.tone})["alice"]) <= TOLERANCE


def test_pauses_show_a_slate_and_are_silent(
    call: Call, call_copy: Callable[[], Path], tmp_path: Path
) -> None:
    folder = call_copy()
    t0 = call.summaries["alice-audio-1"].first_wallclock
    assert t0 is not None
    bob_pause = PauseInterval(start_time=t0 + 4.1, end_time=t0 + 5.2, by="agent", reason="card number")
    for track in ("bob-audio-1", "bob-video-0"):
        edit_summary(folder, track, lambda s: s.pauses.append(bob_pause))
    info = RecordingInfo(
        recording_id="r1", folder=folder, started_at=t0,
        pauses=[PauseInterval(start_time=t0 + 2.2, end_time=t0 + 3.4)],
    )  # fmt: skip
    result = build_composite(folder, options(tmp_path), info=info)
    times, luma = video_luma(result.path, {"whole": (0, 0, 640, 360), "bob": RIGHT})
    paused = luma["whole"][(times > 2.25) & (times < 3.35)]
    assert abs(float(np.median(paused)) - SLATE_BG[0]) < 10  # the whole frame is the pause slate
    samples, rate = audio_mono(result.path)
    assert np.abs(samples[round(2.25 * rate) : round(3.35 * rate)]).max() < 0.01
    alice_beeps, bob_beeps = (tone_onsets(samples, rate, t) for t in (ALICE.tone, BOB.tone))
    assert not [b for b in alice_beeps if 2.2 <= b < 3.4]
    assert not [b for b in bob_beeps if 4.1 <= b < 5.2] and [b for b in bob_beeps if b < 4.1]
    assert [b for b in alice_beeps if 4.1 <= b < 5.2]  # alice was not paused
    assert [f for f in flash_onsets(times, luma["bob"], after=4.15) if f < 5.2] == []  # bob's tile: a slate


def corrupt(path: Path, fraction: float = 0.3) -> None:
    data = bytearray(path.read_bytes())
    start, length = len(data) // 3, int(len(data) * fraction)
    data[start : start + length] = np.random.default_rng(7).integers(0, 256, length, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def test_damaged_file_recovered_from_its_segments(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    corrupt(folder / "alice-video-0.webm")
    result = build_composite(folder, options(tmp_path))
    assert any("alice-video-0" in w for w in result.warnings), result.warnings
    found = offsets(result, TONES)
    assert len(found["alice"]) >= 4 and max(abs(v) for v in found["alice"]) <= TOLERANCE, found


def test_truncated_file_recovered_from_its_segments(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    path = folder / "alice-video-0.webm"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    result = build_composite(folder, options(tmp_path))
    found = offsets(result, TONES)
    assert len(found["alice"]) >= 4 and max(abs(v) for v in found["alice"]) <= TOLERANCE, found


def test_unreadable_track_is_a_clear_error(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    summary = TrackSummary.model_validate_json((folder / "alice-video-0.json").read_bytes())
    for f in [folder / "alice-video-0.webm", *(folder / s.path for s in summary.segments)]:
        f.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CompositeError, match="alice-video-0"):
        build_composite(folder, options(tmp_path))
    assert not (tmp_path / "c.mp4").exists() and not (tmp_path / "c.mp4.part").exists()


def test_folders_without_media_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CompositeError, match="not a folder"):
        build_composite(tmp_path / "missing")
    (tmp_path / "junk.json").write_text(json.dumps({"name": "junk"}))
    with pytest.raises(CompositeError, match="no recorded track"):
        build_composite(tmp_path)


def test_absurd_timing_is_refused(call_copy: Callable[[], Path], tmp_path: Path) -> None:
    folder = call_copy()
    edit_summary(folder, "bob-audio-1", lambda s: setattr(s, "last_wallclock", (s.last_wallclock or 0) + 1e7))
    with pytest.raises(CompositeError, match="span"):
        build_composite(folder, options(tmp_path))
