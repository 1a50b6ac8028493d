"""Text PostgreSQL refuses and SQLite stores: a NUL in a participant's display name or a tag (from a
hostile SFU event or API call) must not cost the recording its catalog rows on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from postgres_kit import PostgresServer

from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import RecordingStatus
from recorder.recording import ParticipantInfo, RecordingInfo


def test_a_nul_is_stored_as_a_replacement_character(postgres_server: PostgresServer) -> None:
    db = Database(postgres_server.create_database())
    catalog = Catalog(db)
    info = RecordingInfo(
        recording_id="rec-nul",
        folder=Path("/data/rec-nul"),
        started_at=1.8e9,
        metadata={"queue": "bill\x00ing"},
        participants=[ParticipantInfo(id="p1", display_name="Al\x00ice")],
    )
    try:
        db.submit(lambda: catalog.upsert_recording(info, RecordingStatus.RECORDING)).result()
        detail = db.submit(lambda: catalog.get("rec-nul")).result()
    finally:
        db.close()
    assert detail is not None
    assert detail.metadata == {"queue": "bill\ufffding"}
    assert [p.display_name for p in detail.participants] == ["Al\ufffdice"]
