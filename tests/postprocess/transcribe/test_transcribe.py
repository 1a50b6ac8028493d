"""`callvault transcribe` on a real recorded call of espeak-ng speech, with the packaged Whisper tiny.en."""

from __future__ import annotations

import re
from pathlib import Path

from speech import AGENT_SAYS, CUSTOMER_SAYS, SpokenCall, wer

from postprocess.transcribe.models import Transcript
from postprocess.transcribe.vtt import timestamp
from recorder.cli import main

WER_BOUND = 0.3
"""Word error rate bound for tiny.en on espeak-ng speech (digits compared one by one)."""
TIME_TOLERANCE = 0.5
"""Seconds: a speaker's first word against where the speech starts on the recording's timeline."""

_NUMBERS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9"}  # fmt: skip


def normalize(text: str) -> str:
    """Lower case, no punctuation, number words as digits, every digit a word of its own."""
    words = re.sub(r"[^a-z0-9 ]", "", text.lower().replace("-", " ")).split()
    words = [_NUMBERS.get(w, w) for w in words]
    return " ".join(" ".join(w) if w.isdigit() else w for w in words)


def _said(transcript: Transcript, speaker: str) -> str:
    return " ".join(s.text for s in transcript.segments if s.speaker == speaker)


def test_words_match_the_script(transcribed: Path) -> None:
    transcript = Transcript.model_validate_json((transcribed / "transcript.json").read_bytes())
    assert transcript.model == "tiny.en"
    assert {t.speaker for t in transcript.tracks} == {"alice", "bob"}
    for speaker, script in (("alice", AGENT_SAYS), ("bob", CUSTOMER_SAYS)):
        heard = _said(transcript, speaker)
        assert wer(normalize(script), normalize(heard)) < WER_BOUND, (speaker, heard)
    assert "4539148803436467" in normalize(_said(transcript, "bob")).replace(" ", "")
    for seg in transcript.segments:
        assert 0.0 <= seg.confidence <= 1.0
        assert all(seg.start - 0.05 <= w.start <= w.end <= seg.end + 0.05 for w in seg.words), seg


def test_times_are_on_the_recordings_timeline(transcribed: Path, spoken_call: SpokenCall) -> None:
    transcript = Transcript.model_validate_json((transcribed / "transcript.json").read_bytes())
    tracks = {t.speaker: t for t in transcript.tracks}
    origin = min(s.first_wallclock or 0.0 for s in spoken_call.summaries.values())
    assert transcript.origin == origin
    for speaker in ("alice", "bob"):
        summary = spoken_call.summaries[f"{speaker}-audio-1"]
        assert tracks[speaker].offset == round((summary.first_wallclock or 0.0) - origin, 3)
        first = min(w.start for s in transcript.segments if s.speaker == speaker for w in s.words)
        expected = tracks[speaker].offset + spoken_call.onsets[speaker]
        assert abs(first - expected) < TIME_TOLERANCE, (speaker, first, expected)
    # bob started about 3 s after alice: his words come after hers
    assert tracks["bob"].offset > 2.0


def test_webvtt_names_the_speakers(transcribed: Path) -> None:
    transcript = Transcript.model_validate_json((transcribed / "transcript.json").read_bytes())
    vtt = (transcribed / "transcript.vtt").read_text()
    assert vtt.startswith("WEBVTT\n")
    first = transcript.segments[0]
    assert f"{timestamp(first.start)} --> {timestamp(first.end)}\n<v {first.speaker}>" in vtt
    assert "<v bob>My card number" in vtt


def test_bad_input_gives_one_clear_error(tmp_path: Path, capsys: object) -> None:
    assert main(["transcribe", str(tmp_path / "missing")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["transcribe", str(empty)]) == 2
    assert main(["transcribe", str(empty), "--model", str(tmp_path)]) == 2
