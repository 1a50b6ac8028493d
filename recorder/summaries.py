"""Reading and writing a track's summary JSON (<folder>/<track>.json), atomically."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from recorder.models import TrackSummary


def summary_path(folder: Path, track: str) -> Path:
    return folder / f"{track}.json"


def write_summary(folder: Path, summary: TrackSummary) -> None:
    """Replace the track's summary JSON atomically (write beside it, then rename)."""
    path = summary_path(folder, summary.name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(summary.model_dump_json(indent=2))
    tmp.replace(path)


def read_summary(folder: Path, track: str) -> TrackSummary | None:
    """The track's summary, or None when it is missing or unreadable."""
    try:
        return TrackSummary.model_validate_json(summary_path(folder, track).read_bytes())
    except (OSError, ValidationError):
        return None
