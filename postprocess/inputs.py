"""A recording folder as the composite sees it: participants, their tracks, files and timing.

Participants and names come, in order of preference, from a RecordingInfo the caller passes (the service
has one), `recording.json` (a RecordingInfo) or `manifest.json` in the folder, and the track names
(`<participant>-<kind>-<mid>`, `-partN` after a service restart). Tracks named `<kind>-<mid>` (record-rtp)
belong to one unnamed participant.

Roles (agent, customer...) are drawn beside names. A participant's role is its `role` tag (participant
metadata: `PATCH /v1/recordings/{id}/participants/{pid}` with `{"metadata": {"role": "agent"}}`, or what
the integration set when the participant joined); without one, a display name that ends in a bracketed
known role, `Alice (agent)` or `Bob [customer]`, gives the role and the name without it. Anything else has
no role.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from postprocess.options import CompositeError
from recorder.models import MediaKind, PauseInterval, TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo

log = logging.getLogger(__name__)

ROLE_TAG = "role"
NAMED_ROLES = ("agent", "customer", "supervisor")
"""Roles recognised at the end of a display name (a `role` tag may say anything)."""
_ROLE_IN_NAME = re.compile(r"^(?P<name>.*?)\s*[(\[](?P<role>" + "|".join(NAMED_ROLES) + r")[)\]]\s*$", re.I)
MAX_ROLE = 24
_TRACK_NAME = re.compile(r"^(?:(?P<participant>.+)-)?(?P<kind>audio|video)-(?P<mid>[^-]+?)(?:-part\d+)?$")
RECORDING_INFO_NAME = "recording.json"
MANIFEST_NAME = "manifest.json"


@dataclass
class TrackInput:
    summary: TrackSummary
    participant: str
    file: Path | None
    """The joined file, if it exists."""
    segments: list[tuple[Path, str | None]]
    """The segment files in order, with their SHA-256 from the summary: the fallback."""

    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def kind(self) -> MediaKind:
        return self.summary.kind


@dataclass
class ParticipantInput:
    id: str
    name: str
    tracks: list[TrackInput] = field(default_factory=list)
    joined_at: float | None = None
    left_at: float | None = None
    role: str | None = None

    @property
    def video(self) -> list[TrackInput]:
        return [t for t in self.tracks if t.kind is MediaKind.VIDEO]


@dataclass
class RecordingInput:
    folder: Path
    participants: list[ParticipantInput]
    pauses: list[PauseInterval]
    warnings: list[str] = field(default_factory=list)

    @property
    def tracks(self) -> list[TrackInput]:
        return [t for p in self.participants for t in p.tracks]


def participant_from_name(track: str) -> str:
    m = _TRACK_NAME.match(track)
    return (m.group("participant") or "") if m else ""


def name_and_role(display_name: str, metadata: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(name to show, role or None) of a participant: see the module documentation."""
    tagged = " ".join(str((metadata or {}).get(ROLE_TAG) or "").split())[:MAX_ROLE].lower()
    m = _ROLE_IN_NAME.match(display_name)
    if m and m.group("name").strip():
        return m.group("name").strip(), tagged or m.group("role").lower()
    return display_name, tagged or None


def _load_info(folder: Path, info: RecordingInfo | None) -> tuple[RecordingInfo | None, dict[str, str]]:
    """(RecordingInfo if any, track -> participant from a manifest if any)."""
    if info is not None:
        return info, {}
    path = folder / RECORDING_INFO_NAME
    if path.is_file():
        try:
            return RecordingInfo.model_validate_json(path.read_bytes()), {}
        except (OSError, ValidationError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
    path = folder / MANIFEST_NAME
    if path.is_file():
        try:
            doc = json.loads(path.read_bytes())
            owners = {
                str(t["name"]): str(t["participant_id"])
                for t in doc.get("tracks", [])
                if t.get("participant_id")
            }
            participants = [
                ParticipantInfo(
                    id=str(p["id"]),
                    display_name=p.get("display_name"),
                    metadata={str(k): str(v) for k, v in (p.get("metadata") or {}).items()},
                )
                for p in doc.get("participants", [])
            ]
            started = float(doc.get("started_at", 0.0) or 0.0)
            return (
                RecordingInfo(recording_id=str(doc.get("recording_id", folder.name)), folder=folder,
                              started_at=started, participants=participants, track_participants=owners),
                owners,
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
    return None, {}


def _summaries(folder: Path) -> list[TrackSummary]:
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name in (RECORDING_INFO_NAME, MANIFEST_NAME):
            continue
        try:
            summary = TrackSummary.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            continue  # not a track summary
        if summary.name == path.stem:
            out.append(summary)
    return out


def _segments(folder: Path, summary: TrackSummary) -> list[tuple[Path, str | None]]:
    listed = [(folder / s.path, s.sha256) for s in sorted(summary.segments, key=lambda s: s.index)]
    if listed:
        return [(path, sha) for path, sha in listed if path.is_file()]
    seg_dir = folder / f"{summary.name}.segments"  # a crashed recorder's segments, not yet listed
    return [(p, None) for p in sorted(seg_dir.glob("*")) if p.suffix in (".webm", ".mkv")]


def load_recording(folder: Path, info: RecordingInfo | None = None) -> RecordingInput:
    """Read the folder's track summaries and who published what. Raises CompositeError when the folder
    holds no track with media."""
    if not folder.is_dir():
        raise CompositeError(f"{folder} is not a folder")
    info, _ = _load_info(folder, info)
    summaries = _summaries(folder)
    warnings: list[str] = []
    owners = dict(info.track_participants) if info else {}
    names = {p.id: p.display_name for p in info.participants} if info else {}
    tags = {p.id: p.metadata for p in info.participants} if info else {}
    timing = {p.id: (p.joined_at, p.left_at) for p in info.participants} if info else {}
    participants: dict[str, ParticipantInput] = {}
    for summary in summaries:
        if summary.first_wallclock is None or summary.frames == 0:
            warnings.append(f"track {summary.name}: no media recorded; left out")
            continue
        if summary.state == "recording":
            warnings.append(f"track {summary.name}: still recording or not finalized; using what is there")
        joined: Path | None = folder / summary.file if summary.file else None
        if joined is not None and not joined.is_file():
            joined = None
        segments = _segments(folder, summary)
        if joined is None and not segments:
            warnings.append(f"track {summary.name}: no media file; left out")
            continue
        pid = owners.get(summary.name) or participant_from_name(summary.name)
        if pid not in participants:
            joined_at, left_at = timing.get(pid, (None, None))
            name, role = name_and_role(names.get(pid) or pid or "Participant", tags.get(pid))
            participants[pid] = ParticipantInput(pid, name, [], joined_at, left_at, role)
        participants[pid].tracks.append(TrackInput(summary, pid, joined, segments))
    if not participants:
        raise CompositeError(f"{folder}: no recorded track with media (track summaries <track>.json)")
    pauses = list(info.pauses) if info else []
    return RecordingInput(folder, list(participants.values()), pauses, warnings)
