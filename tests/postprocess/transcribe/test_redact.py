"""`callvault redact` on the transcribed call: the spoken card number is found and silenced in a copy of
the audio, the transcript masked; the order number (16 digits, Luhn-invalid) and the extension (4 digits)
are left alone. Tolerances: silence floor 1e-4 RMS (full scale 1.0); outside the silenced packets the
copy's packets are bit-exact and the decoded audio differs by < 1e-3 except the 100 ms after an interval
(the Opus decoder's state carries over from the silence)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from speech import CARD, EXTENSION, ORDER

from postprocess.redact.recording import REDACTED_DIR, REPORT_NAME, RedactionReport
from postprocess.transcribe.audio import SAMPLE_RATE, decode_track
from postprocess.transcribe.models import MASK, Transcript, Word
from recorder.cli import main

SILENCE_FLOOR = 1e-4
OUTSIDE_TOLERANCE = 1e-3
SETTLE = 0.1


@pytest.fixture(scope="module")
def redacted(transcribed: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Transcript]:
    folder = tmp_path_factory.mktemp("redacted") / "rec"
    shutil.copytree(transcribed, folder)
    original = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
    assert main(["redact", str(folder)]) == 0
    return folder, original


def _words_spelling(transcript: Transcript, speaker: str, digits: str) -> list[Word]:
    """The run of the speaker's words whose digits spell `digits`."""
    words = [w for s in transcript.segments if s.speaker == speaker for w in s.words]
    for i in range(len(words)):
        spelled = ""
        for j in range(i, len(words)):
            spelled += "".join(ch for ch in words[j].text if ch.isdigit())
            if spelled == digits:
                return words[i : j + 1]
            if not digits.startswith(spelled) or not spelled:
                break
    raise AssertionError(f"{digits} not heard: {[w.text for w in words]}")


def _rms(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[max(0, round(start * SAMPLE_RATE)) : round(end * SAMPLE_RATE)]
    return float(np.sqrt((part.astype(np.float64) ** 2).mean())) if part.size else 0.0


def _report(folder: Path) -> RedactionReport:
    return RedactionReport.model_validate_json((folder / REDACTED_DIR / REPORT_NAME).read_bytes())


def test_spoken_card_number_is_silenced(redacted: tuple[Path, Transcript]) -> None:
    folder, original = redacted
    report = _report(folder)
    card = _words_spelling(original, "bob", CARD)
    start, end = card[0].start, card[-1].end
    reasons = {r.reason for r in report.redactions}
    assert "card-number" in reasons and "card-expiry" in reasons, report.redactions
    number = next(r for r in report.redactions if r.reason == "card-number")
    assert number.rule == "auto" and number.start <= start and number.end >= end
    offset = next(t.offset for t in original.tracks if t.speaker == "bob")
    before, _ = decode_track(folder / "bob-audio-1.webm")
    after, _ = decode_track(folder / REDACTED_DIR / "bob-audio-1.webm")
    assert before.size == after.size
    assert _rms(before, start - offset, end - offset) > 0.01  # speech was there
    assert _rms(after, start - offset, end - offset) < SILENCE_FLOOR
    # outside every redacted interval, the decoded audio is what it was
    keep = np.ones(after.size, dtype=bool)
    for r in report.redactions:
        keep[
            max(0, round((r.start - offset - 0.03) * SAMPLE_RATE)) : round(
                (r.end - offset + SETTLE) * SAMPLE_RATE
            )
        ] = False
    assert np.abs(before[keep] - after[keep]).max() < OUTSIDE_TOLERANCE
    assert keep.mean() > 0.5


def test_only_packets_in_the_intervals_change(redacted: tuple[Path, Transcript]) -> None:
    """Both tracks (alice's too, where she overlaps an interval): packets outside every interval are
    copied bit for bit; those inside are replaced."""
    folder, original = redacted
    report = _report(folder)
    for track in report.tracks:
        offset = next(t.offset for t in original.tracks if t.track == track.track)
        with av.open(str(folder / f"{track.track}.webm")) as a, av.open(str(folder / track.file)) as b:
            pa = [
                (p.pts, bytes(p), float(p.pts * p.time_base)) for p in a.demux(audio=0) if p.pts is not None
            ]
            pb = [(p.pts, bytes(p)) for p in b.demux(audio=0) if p.pts is not None]
        assert [p[0] for p in pa] == [p[0] for p in pb]
        changed = [t for (_, x, t), (_, y) in zip(pa, pb, strict=True) if x != y]
        assert len(changed) <= track.packets_silenced
        if track.track == "bob-audio-1":
            assert changed
        for t in changed:
            assert any(r.start - 0.03 <= t + offset <= r.end for r in report.redactions), (track.track, t)


def test_other_digits_are_left_alone(redacted: tuple[Path, Transcript]) -> None:
    folder, original = redacted
    report = _report(folder)
    masked = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
    for digits in (ORDER, EXTENSION):
        words = _words_spelling(original, "bob", digits)
        assert not any(r.start < words[-1].end and words[0].start < r.end for r in report.redactions), digits
        assert _words_spelling(masked, "bob", digits)  # still readable in the masked transcript
    offset = next(t.offset for t in original.tracks if t.speaker == "bob")
    order = _words_spelling(original, "bob", ORDER)
    before, _ = decode_track(folder / "bob-audio-1.webm")
    after, _ = decode_track(folder / REDACTED_DIR / "bob-audio-1.webm")
    s, e = order[0].start - offset, order[-1].end - offset
    assert abs(_rms(before, s, e) - _rms(after, s, e)) < OUTSIDE_TOLERANCE


def test_transcript_is_masked(redacted: tuple[Path, Transcript]) -> None:
    folder, _ = redacted
    for path in (folder / "transcript.json", folder / REDACTED_DIR / "transcript.json"):
        text = path.read_text()
        digits = "".join(ch for ch in text if ch.isdigit())
        assert CARD not in digits.replace(" ", "")
        masked = Transcript.model_validate_json(text)
        assert MASK in masked.text and "4539" not in masked.text
        assert masked.redactions and all(r.rule == "auto" for r in masked.redactions)
    assert "4539" not in (folder / "transcript.vtt").read_text()
    assert json.loads((folder / REDACTED_DIR / REPORT_NAME).read_text())["recording"] == "rec"


def test_transcribing_again_keeps_the_redactions(redacted: tuple[Path, Transcript], tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(redacted[0], folder)
    masked = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
    assert main(["transcribe", str(folder)]) == 0
    again = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
    assert again.redactions == masked.redactions
    assert (
        MASK in again.text
        and "4539" not in again.text
        and "4539" not in (folder / "transcript.vtt").read_text()
    )


def test_manual_interval(transcribed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "rec"
    shutil.copytree(transcribed, folder)
    transcript = Transcript.model_validate_json((folder / "transcript.json").read_bytes())
    alice = next(t for t in transcript.tracks if t.speaker == "alice")
    speech = [w for s in transcript.segments if s.speaker == "alice" for w in s.words]
    start, end = speech[1].start, speech[-1].end
    args = ["redact", str(folder), "--no-auto", "--interval", f"{start:.2f}-{end:.2f}", "--reason", "asked"]
    assert main(args) == 0
    report = _report(folder)
    assert [(r.rule, r.reason) for r in report.redactions] == [("manual", "asked")]
    after, _ = decode_track(folder / REDACTED_DIR / "alice-audio-1.webm")
    before, _ = decode_track(folder / "alice-audio-1.webm")
    s, e = start - alice.offset + 0.02, end - alice.offset - 0.02
    assert _rms(before, s, e) > 0.01 and _rms(after, s, e) < SILENCE_FLOOR
    assert _rms(after, 0, speech[0].start - alice.offset) == pytest.approx(
        _rms(before, 0, speech[0].start - alice.offset), abs=1e-3
    )


def test_bad_input(transcribed: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["redact", str(transcribed), "--interval", "5-2"])
    assert exc.value.code == 2
    folder = tmp_path / "rec"
    shutil.copytree(transcribed, folder)
    (folder / "transcript.json").unlink()
    assert main(["redact", str(folder)]) == 2  # the automatic path needs a transcript
    assert not (folder / REDACTED_DIR / REPORT_NAME).exists()
    assert main(["redact", str(tmp_path / "nothing")]) == 2
