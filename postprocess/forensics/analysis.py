"""Everything a report shows, computed from a recording's facts (facts.py) and captures (capture.py), and
the plain-words summary at its top. Pure apart from `analyze_recording`, which reads the folder."""

from __future__ import annotations

import math
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from postprocess.forensics.capture import TrackCapture, load_captures
from postprocess.forensics.facts import RecordingFacts, read_facts
from postprocess.forensics.stats import StreamStats, analyze
from postprocess.forensics.sync import Drift, SyncSeries, av_offset, clock_drift
from recorder.manifest.model import ManifestTrack
from recorder.models import MediaKind

CAPTURE_ONLY = (
    "bitrate",
    "packet loss over time",
    "jitter (RFC 3550)",
    "frame rate",
    "keyframe times",
    "duplicates and reordering",
)
"""Plots and figures that need the raw capture (the summaries hold totals only)."""

SYNC_OK = (-125.0, 45.0)  # ms, video ahead .. video behind (ITU-R BT.1359 detectability thresholds)


class TrackAnalysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track: ManifestTrack
    stats: StreamStats | None = Field(default=None, description="From the capture; None without one.")
    drift: Drift
    capture_files: int = 0


class ParticipantSync(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participant: str
    audio: str
    video: str
    series: SyncSeries


class ReportData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facts: RecordingFacts
    tracks: list[TrackAnalysis]
    sync: list[ParticipantSync]
    has_capture: bool
    unavailable: list[str] = Field(default_factory=list, description="What cannot be shown, and why.")
    capture_problems: list[str] = Field(default_factory=list)
    generated_at: float
    summary: list[str] = Field(default_factory=list, description="The plain-words summary, in sentences.")


MAX_POINTS = 1800
"""Time bins per plotted series: one a second up to 30 minutes, wider bins for longer calls."""


def bin_width(facts: RecordingFacts) -> float:
    """Seconds per time bin: 1, or more for calls longer than MAX_POINTS seconds."""
    if facts.started_at is None or facts.finished_at is None:
        return 1.0
    return float(max(1, math.ceil((facts.finished_at - facts.started_at) / MAX_POINTS)))


def analyze_recording(
    folder: Path, public_key: Ed25519PublicKey | None = None, bin_seconds: float | None = None
) -> ReportData:
    facts = read_facts(folder, public_key)
    captures, problems = load_captures(folder, facts.tracks)
    return build(facts, captures, problems, bin_seconds or bin_width(facts))


def build(
    facts: RecordingFacts,
    captures: dict[str, TrackCapture],
    capture_problems: list[str] | None = None,
    bin_seconds: float = 1.0,
) -> ReportData:
    tracks = []
    for t in facts.tracks:
        cap = captures.get(t.name)
        stats = None
        if cap is not None and cap.count:
            pauses = [(p.start_time, p.end_time or float("inf")) for p in t.pauses]
            stats = analyze(
                cap.columns(), t.clock_rate, bin_seconds, video=t.kind is MediaKind.VIDEO, pauses=pauses
            )
        reports = t.rtcp_sender_reports
        tracks.append(
            TrackAnalysis(
                track=t,
                stats=stats,
                drift=clock_drift(reports, t.clock_rate),
                capture_files=cap.files if cap is not None else 0,
            )
        )
    sync = []
    owners: dict[str, list[ManifestTrack]] = {}
    for t in facts.tracks:
        owners.setdefault(t.participant_id or _owner_of(t.name), []).append(t)
    for participant, owned in sorted(owners.items()):
        audio = [
            t for t in owned if t.kind is MediaKind.AUDIO and t.rtcp_sender_reports and t.first_wallclock
        ]
        video = [
            t for t in owned if t.kind is MediaKind.VIDEO and t.rtcp_sender_reports and t.first_wallclock
        ]
        if audio and video:
            a, v = audio[0], video[0]
            assert a.first_wallclock is not None and v.first_wallclock is not None
            series = av_offset(
                a.rtcp_sender_reports, a.clock_rate, a.first_wallclock,
                v.rtcp_sender_reports, v.clock_rate, v.first_wallclock,
            )  # fmt: skip
            sync.append(ParticipantSync(participant=participant, audio=a.name, video=v.name, series=series))
    has_capture = any(t.stats is not None for t in tracks)
    unavailable = []
    if not has_capture:
        unavailable.append(
            "This recording has no raw packet capture, so these are not shown: "
            + ", ".join(CAPTURE_ONLY)
            + ". Totals from the track summaries are shown instead."
        )
    if not any(t.rtcp_sender_reports for t in facts.tracks):
        unavailable.append(
            "No RTCP sender reports were recorded, so audio/video sync and sender clock drift are not shown."
        )
    data = ReportData(
        facts=facts,
        tracks=tracks,
        sync=sync,
        has_capture=has_capture,
        unavailable=unavailable,
        capture_problems=list(capture_problems or []),
        generated_at=time.time(),
    )
    data.summary = plain_summary(data)
    return data


def _owner_of(track: str) -> str:
    """A track's participant when the manifest does not say: the name up to '-audio'/'-video'."""
    for marker in ("-audio", "-video"):
        if marker in track:
            return track.split(marker, 1)[0]
    return track


def duration_text(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} seconds"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def track_label(t: ManifestTrack) -> str:
    who = t.participant_id or _owner_of(t.name)
    return f"{who} {t.kind.value}"


def plain_summary(data: ReportData) -> list[str]:
    """Sentences a non-engineer can read: how long, who, whether the files are intact, what was lost."""
    f = data.facts
    out = []
    people = sorted({t.participant_id or _owner_of(t.name) for t in f.tracks})
    length = (
        f" lasted {duration_text(f.finished_at - f.started_at)}"
        if f.started_at is not None and f.finished_at is not None
        else ""
    )
    where = f" of room {f.room_id}" if f.room_id else ""
    out.append(
        f"This recording{where}{length} and holds {len(f.tracks)} tracks from {len(people)}"
        f" participant{'s' if len(people) != 1 else ''}."
        + (f" It was imported from {f.imported_from}." if f.imported_from else "")
    )
    integrity = f.integrity
    if not integrity.checked:
        out.append("It has no signed manifest yet, so its integrity cannot be checked.")
    elif integrity.ok:
        signer = "the pinned key" if integrity.key_pinned else "the key the manifest names (not pinned)"
        out.append(
            f"Integrity: VERIFIED. All {integrity.objects_checked} files match the signed manifest, the"
            f" segment hash chains are whole and the signature by {signer} is valid."
        )
    else:
        out.append(
            f"Integrity: FAILED. {len(integrity.problems)} problem(s) were found, for example:"
            f" {integrity.problems[0] if integrity.problems else 'unknown'}. The files may have been altered"
            " or be incomplete."
        )
    lossy = []
    for a in data.tracks:
        t = a.track
        lost = a.stats.lost if a.stats is not None else t.packets_lost
        expected = a.stats.expected if a.stats is not None else t.packets_received + t.packets_lost
        if lost:
            pct = 100.0 * lost / expected if expected else 0.0
            lossy.append(f"{track_label(t)} lost {lost} packets ({pct:.2f} %)")
    if lossy:
        out.append("On the network, " + "; ".join(lossy) + ".")
    else:
        out.append("No packet was lost on the way to the recorder.")
    gaps = [(a.track, g) for a in data.tracks for g in a.track.gaps]
    if gaps:
        total = sum(max(0.0, g.end_time - g.start_time) for _, g in gaps)
        out.append(
            f"The recorded media has {len(gaps)} gap(s), {duration_text(total)} in all, where frames could"
            " not be recorded (listed under 'What was lost and where')."
        )
    pauses = {(p.start_time, p.end_time, p.by) for a in data.tracks for p in a.track.pauses}
    if pauses:
        total = sum((e or s) - s for s, e, _ in pauses)
        who = sorted({b for _, _, b in pauses if b})
        out.append(
            f"Recording was paused {len(pauses)} time(s) for {duration_text(total)} in all"
            + (f" (by {', '.join(who)})" if who else "")
            + "; nothing of a pause is stored, by design."
        )
    if data.has_capture:
        worst = max(
            (a for a in data.tracks if a.stats), key=lambda a: a.stats.jitter_ms_max if a.stats else 0
        )
        if worst.stats is not None:
            out.append(
                f"The highest network jitter was {worst.stats.jitter_ms_max:.1f} ms"
                f" ({track_label(worst.track)})."
            )
    for s in data.sync:
        if s.series.offset_ms:
            lo, hi = min(s.series.offset_ms), max(s.series.offset_ms)
            verdict = (
                "in sync" if SYNC_OK[0] <= lo and hi <= SYNC_OK[1] else "noticeably out of sync at times"
            )
            out.append(
                f"Audio and video of {s.participant} were {verdict} (video behind audio by {lo:.0f} to"
                f" {hi:.0f} ms)."
            )
    return out
