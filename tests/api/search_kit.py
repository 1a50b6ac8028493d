"""Catalog rows for the search tests (tests/api/test_search_*.py): recordings described by a row each, written
straight into the catalog (no files)."""

from __future__ import annotations

from pathlib import Path

from recorder.api.catalog import Catalog
from recorder.api.models import RecordingStatus
from recorder.recording import ParticipantInfo, RecordingInfo

Row = tuple[str, str | None, float, float | None, int, int]
"""(id suffix, room, started (s before `now`), duration (None: live), participants, bytes)"""


def fill(catalog: Catalog, rows: list[Row], prefix: str, now: float) -> None:
    """(on the catalog's worker thread) One recording per row, id `prefix + suffix`: finished, or live
    (status recording) when it has no duration; `participants` participants p0, p1...; `bytes` stored."""
    for suffix, room, ago, duration, people, size in rows:
        rid = prefix + suffix
        started = now - ago
        info = RecordingInfo(
            recording_id=rid,
            folder=Path("/nonexistent") / rid,
            room_id=room,
            started_at=started,
            finished_at=None if duration is None else started + duration,
            participants=[ParticipantInfo(id=f"p{i}") for i in range(people)],
        )
        live = duration is None
        catalog.upsert_recording(info, RecordingStatus.RECORDING if live else RecordingStatus.FINISHED)
        if size:
            catalog.add_bytes(rid, size)
