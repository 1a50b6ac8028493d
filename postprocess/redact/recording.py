"""Redact a recording folder: the intervals (found in its transcript, and/or given by an admin) silenced in
every audio track, written as a redacted copy in `<folder>/redacted/` (each audio track under its own
file name, the masked transcript, and `redactions.json` listing every interval with its reason and rule);
the folder's own transcript is masked in place (its text would otherwise hold the card number). The
original media are kept: deleting them is the caller's policy.

Intervals are on the recording's timeline (Transcript.origin, else the earliest first frame of the
tracks); a track's file time is `interval - offset + first frame time`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
from pydantic import BaseModel, ConfigDict, Field

from postprocess.inputs import load_recording
from postprocess.options import CompositeError
from postprocess.redact.audio import RedactError, silence_track
from postprocess.redact.cards import find_card_numbers, merge
from postprocess.redact.mask import mask_transcript
from postprocess.transcribe.models import TRANSCRIPT_JSON, RedactionInterval, Transcript
from postprocess.transcribe.recording import read_transcript, write_transcript
from recorder.models import MediaKind

log = logging.getLogger(__name__)

REDACTED_DIR = "redacted"
REPORT_NAME = "redactions.json"


class RedactedTrack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track: str
    file: str = Field(description="The redacted copy, relative to the recording folder.")
    packets_silenced: int = Field(ge=0)


class RedactionReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording: str
    redactions: list[RedactionInterval]
    tracks: list[RedactedTrack] = Field(default_factory=list)


def first_frame_time(path: Path) -> float:
    """File time (seconds) of the first decoded audio frame: where the transcript's offset counts from."""
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            if frame.time is not None:
                return float(frame.time)
    return 0.0


def redact_recording(folder: Path, manual: list[RedactionInterval], auto: bool = True) -> RedactionReport:
    """Redact the folder. `auto`: also the card numbers found in its transcript.json (required then).
    Raises RedactError with one line saying why it cannot."""
    transcript: Transcript | None = None
    tpath = folder / TRANSCRIPT_JSON
    if auto or tpath.is_file():
        if not tpath.is_file():
            raise RedactError(f"{folder}: no {TRANSCRIPT_JSON}: run `callvault transcribe` first")
        transcript = read_transcript(tpath)
    intervals = [*manual, *(find_card_numbers(transcript) if auto and transcript else [])]
    intervals.sort(key=lambda r: (r.start, r.end))
    try:
        recording = load_recording(folder)
    except CompositeError as exc:
        raise RedactError(str(exc)) from exc
    starts = [t.summary.first_wallclock for t in recording.tracks if t.summary.first_wallclock is not None]
    origin = transcript.origin if transcript and transcript.origin is not None else min(starts, default=None)
    out_dir = folder / REDACTED_DIR
    out_dir.mkdir(exist_ok=True)
    report = RedactionReport(recording=folder.name, redactions=intervals)
    spans = merge(intervals)
    for track in recording.tracks:
        if track.kind is not MediaKind.AUDIO or track.file is None:
            continue
        first = track.summary.first_wallclock
        offset = first - origin if first is not None and origin is not None else 0.0
        zero = first_frame_time(track.file)
        file_spans = [(s - offset + zero, e - offset + zero) for s, e in spans]
        dst = out_dir / track.file.name
        silenced = silence_track(track.file, dst, file_spans)
        report.tracks.append(
            RedactedTrack(track=track.name, file=f"{REDACTED_DIR}/{dst.name}", packets_silenced=silenced)
        )
        log.info("redacted %s: %d packets silenced", track.name, silenced)
    if transcript is not None:
        already = {(r.start, r.end, r.reason) for r in transcript.redactions}
        new = [r for r in intervals if (r.start, r.end, r.reason) not in already]
        masked = mask_transcript(transcript, new)
        write_transcript(out_dir, masked)
        write_transcript(folder, masked)
    _write(out_dir / REPORT_NAME, report.model_dump_json(indent=1).encode())
    return report


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
