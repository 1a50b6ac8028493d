"""Transcribe every audio track of a recording folder and write `transcript.json` and `transcript.vtt`.

The timeline's zero (Transcript.origin) is the earliest first frame of the recording's tracks (what the
composite and the console use); a track's words are placed at `offset + (file time - first sample)`, with
`offset = track.first_wallclock - origin`."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from postprocess.inputs import load_recording
from postprocess.options import CompositeError
from postprocess.transcribe.audio import decode_track
from postprocess.transcribe.engine import Engine
from postprocess.transcribe.models import (
    TRANSCRIPT_JSON,
    TRANSCRIPT_VTT,
    Segment,
    TrackTranscript,
    Transcript,
    TranscriptError,
    Word,
)
from postprocess.transcribe.vtt import to_webvtt
from recorder.models import MediaKind

log = logging.getLogger(__name__)


def transcribe_recording(folder: Path, engine: Engine) -> Transcript:
    """Every audio track of the folder, transcribed. Raises TranscriptError when the folder holds no
    audio track or one cannot be decoded."""
    try:
        recording = load_recording(folder)
    except CompositeError as exc:
        raise TranscriptError(str(exc)) from exc
    audio = [t for t in recording.tracks if t.kind is MediaKind.AUDIO and t.file is not None]
    if not audio:
        raise TranscriptError(f"{folder}: no audio track with a joined file")
    starts = [t.summary.first_wallclock for t in recording.tracks if t.summary.first_wallclock is not None]
    origin = min(starts) if starts else None
    transcript = Transcript(recording=folder.name, origin=origin, model=engine.name)
    for track in audio:
        assert track.file is not None
        first = track.summary.first_wallclock
        offset = first - origin if first is not None and origin is not None else 0.0
        samples, _ = decode_track(track.file)
        started = time.monotonic()
        raw, language = engine.transcribe(samples)
        spent = time.monotonic() - started
        transcript.tracks.append(
            TrackTranscript(
                track=track.name,
                speaker=track.participant,
                offset=round(offset, 3),
                duration=samples.size / 16_000,
                language=language,
                processing_seconds=round(spent, 3),
            )
        )
        for r in raw:
            words = [
                Word(
                    text=w.text, start=_t(offset + w.start), end=_t(offset + w.end), probability=w.probability
                )
                for w in r.words
            ]
            confidence = sum(w.probability for w in words) / len(words) if words else 1.0
            transcript.segments.append(
                Segment(
                    speaker=track.participant,
                    track=track.name,
                    start=_t(offset + r.start),
                    end=_t(offset + r.end),
                    text=r.text,
                    confidence=round(confidence, 4),
                    words=words,
                )
            )
        log.info("transcribed %s: %.1f s of audio in %.1f s", track.name, samples.size / 16_000, spent)
    transcript.segments.sort(key=lambda s: (s.start, s.speaker))
    return transcript


def _t(seconds: float) -> float:
    return round(max(0.0, seconds), 3)


def write_transcript(folder: Path, transcript: Transcript, stem: str = "transcript") -> list[Path]:
    """`<stem>.json` and `<stem>.vtt` in the folder, each written beside and renamed into place."""
    json_path = folder / (TRANSCRIPT_JSON if stem == "transcript" else f"{stem}.json")
    vtt_path = folder / (TRANSCRIPT_VTT if stem == "transcript" else f"{stem}.vtt")
    for path, data in (
        (json_path, transcript.model_dump_json(indent=1).encode()),
        (vtt_path, to_webvtt(transcript).encode()),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    return [json_path, vtt_path]


def read_transcript(path: Path) -> Transcript:
    try:
        return Transcript.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise TranscriptError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise TranscriptError(f"{path}: not a transcript: {str(exc).splitlines()[0]}") from exc
