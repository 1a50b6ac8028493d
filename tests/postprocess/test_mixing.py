"""The mix never clips, passes quiet audio unchanged, and the active speaker does not flicker."""

from __future__ import annotations

import numpy as np

from postprocess.mixing import CEILING, ActiveSpeaker, Limiter, level_db


def tone(hz: float, seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(round(seconds * 48000)) / 48000
    mono = (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([mono, mono], axis=1)


def run(limiter: Limiter, signal: np.ndarray, chunk: int) -> np.ndarray:
    parts = [limiter.process(signal[i : i + chunk].copy()) for i in range(0, len(signal), chunk)]
    return np.concatenate([*parts, limiter.flush()])


def test_two_full_scale_voices_do_not_clip() -> None:
    mix = tone(440, 2.0, 1.0) + tone(660, 2.0, 1.0)  # peaks near 2.0
    out = run(Limiter(), mix, 48000)
    assert len(out) == len(mix)
    assert np.abs(out).max() <= CEILING + 1e-6
    # Not a hard clip: the loud part is scaled, not flattened.
    assert np.count_nonzero(np.isclose(np.abs(out), CEILING, atol=1e-4)) < len(out) // 100


def test_quiet_audio_passes_unchanged_and_in_order() -> None:
    quiet = tone(1000, 1.5, 0.3)
    out = run(Limiter(), quiet, 7000)  # chunks that do not align with the limiter's blocks
    assert np.array_equal(out, quiet)


def test_gain_recovers_after_a_loud_burst() -> None:
    signal = np.concatenate([tone(440, 0.5, 1.8), tone(440, 2.0, 0.3)])
    out = run(Limiter(), signal, 48000)
    tail = out[-24000:]
    assert np.allclose(tail, signal[-24000:], atol=1e-6)


def test_level_db() -> None:
    assert level_db(np.zeros((480, 2), np.float32)) == -90.0
    assert abs(level_db(tone(1000, 0.1, 1.0)) - (-3.01)) < 0.05


def test_active_speaker_with_hysteresis() -> None:
    s = ActiveSpeaker(hold=1.0)
    assert s.update({"a": -20.0, "b": -60.0}, 0.0) == "a"
    assert s.update({"a": -60.0, "b": -20.0}, 0.5) == "a"  # held: a has had the floor 0.5 s only
    assert s.update({"a": -60.0, "b": -20.0}, 1.2) == "b"
    assert s.update({"a": -19.0, "b": -20.0}, 2.5) == "b"  # not louder by the margin
    assert s.update({"a": -20.0}, 2.6) == "a"  # b left
    assert s.update({}, 3.0) is None
