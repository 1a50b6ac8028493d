"""What a recording folder says about itself: its manifest (tracks with their participants, times), the
track summaries (when there is no manifest yet), and the integrity verdict of recorder/manifest/verify.py
(every file against the manifest's hashes, the segment hash chains, the signature)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recorder.manifest.model import MANIFEST_NAME, Manifest, ManifestTrack
from recorder.manifest.verify import FolderSource, verify_recording

IMPORT_RECORD = "janus-import.json"


class Integrity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checked: bool = Field(description="False when the recording has no manifest to check against.")
    ok: bool = False
    key_pinned: bool = False
    key_id: str | None = None
    objects_checked: int = 0
    problems: list[str] = Field(default_factory=list, description="'kind: name: why' per failing object.")


class RecordingFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    room_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    participants: dict[str, str | None] = Field(default_factory=dict, description="Id -> display name.")
    tracks: list[ManifestTrack]
    integrity: Integrity
    imported_from: str | None = Field(default=None, description="'Janus .mjr files' for an import.")


def read_facts(folder: Path, public_key: Ed25519PublicKey | None = None) -> RecordingFacts:
    """The facts of the recording in `folder` (ValueError when it holds neither manifest nor summaries)."""
    manifest: Manifest | None = None
    path = folder / MANIFEST_NAME
    if path.is_file():
        try:
            manifest = Manifest.model_validate_json(path.read_bytes())
        except ValidationError:
            manifest = None  # the verdict says why
    if manifest is not None:
        report = verify_recording(FolderSource(folder), public_key)
        integrity = Integrity(
            checked=True,
            ok=report.ok,
            key_pinned=report.key_pinned,
            key_id=report.key_id,
            objects_checked=report.objects_checked,
            problems=[f"{p.kind.value}: {p.name}: {p.detail}" for p in report.problems],
        )
        tracks = manifest.tracks
        facts = RecordingFacts(
            recording_id=manifest.recording_id,
            room_id=manifest.room_id,
            started_at=manifest.created_at.timestamp(),
            finished_at=manifest.finished_at.timestamp() if manifest.finished_at else None,
            participants={p.id: p.display_name for p in manifest.participants},
            tracks=tracks,
            integrity=integrity,
        )
    else:
        tracks = _summaries(folder)
        problems = ["bad-manifest: manifest.json: not a valid manifest"] if path.is_file() else []
        facts = RecordingFacts(
            recording_id=folder.name,
            tracks=tracks,
            integrity=Integrity(checked=path.is_file(), ok=False, problems=problems),
        )
        firsts = [t.first_wallclock for t in tracks if t.first_wallclock is not None]
        lasts = [t.last_wallclock for t in tracks if t.last_wallclock is not None]
        facts.started_at = min(firsts) if firsts else None
        facts.finished_at = max(lasts) if lasts else None
    if not facts.tracks:
        raise ValueError(f"{folder} holds no track summaries and no manifest: not a recording folder")
    if (folder / IMPORT_RECORD).is_file():
        facts.imported_from = "Janus .mjr files"
    return facts


def _summaries(folder: Path) -> list[ManifestTrack]:
    tracks = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
            if isinstance(data, dict) and "codec" in data and "kind" in data:
                tracks.append(ManifestTrack.model_validate(data))
        except (OSError, ValueError):
            continue
    return tracks
