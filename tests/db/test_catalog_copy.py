"""`callvault catalog-copy`: an embedded SQLite catalog (recordings with participants, tags, pauses and
tracks, keys, policy, an audit log, a transcript) copied into a new PostgreSQL catalog: every row there,
the audit chain the same to its head, search by what was said working, new pauses numbered after the
copied ones; a target that is not empty refused with nothing written."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from postgres_kit import PostgresServer

from recorder.api.audit import AuditLog, query_entries
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import RecordingStatus, SearchQuery, TranscriptHit
from recorder.cli import main
from recorder.models import PauseInterval
from recorder.recording import ParticipantInfo, RecordingInfo


def _fill(db: Database, tmp_path: Path) -> None:
    catalog, audit = Catalog(db), AuditLog(db)

    def fill() -> None:
        for n in range(3):
            info = RecordingInfo(
                recording_id=f"rec-{n}",
                room_id="room-1",
                folder=tmp_path / f"rec-{n}",
                started_at=1.8e9 + n,
                finished_at=1.8e9 + n + 60,
                metadata={"queue": "billing"},
                participants=[ParticipantInfo(id=f"p{n}", display_name=f"Caller {n}", joined_at=1.8e9)],
            )
            catalog.upsert_recording(info, RecordingStatus.FINISHED)
            catalog.add_pause(f"rec-{n}", None, PauseInterval(start_time=1.8e9 + 5, end_time=1.8e9 + 9))
            audit.append_now("admin", "admin", "recording.tag", f"rec-{n}", "ok", None, {"n": n})
        catalog.index_transcript(
            "rec-1", [TranscriptHit(speaker="bob", start=3.0, end=4.5, text="my card number")]
        )
        db.connection.execute("INSERT INTO policy (name, value) VALUES ('default', '\"enabled\"')")

    db.submit(fill).result()


def test_sqlite_catalog_copied_into_postgres(
    postgres_server: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.sqlite3"
    source = Database(path)
    _fill(source, tmp_path)
    head = source.submit(lambda: query_entries(source.connection)[-1].hash).result()
    source.close()
    url = postgres_server.create_database()

    assert main(["catalog-copy", "--from", str(path), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "recordings: 3 rows" in out and "audit: 3 rows" in out and "transcript_segments: 1 rows" in out
    assert f"(audit head {head})" in out

    db = Database(url)
    catalog = Catalog(db)
    try:
        page = db.submit(lambda: catalog.search(SearchQuery(q="card number"))).result()
        assert [i.recording_id for i in page.items] == ["rec-1"]
        assert page.items[0].transcript_hits[0].start == 3.0
        detail = db.submit(lambda: catalog.get("rec-2")).result()
        assert detail is not None and detail.metadata == {"queue": "billing"} and len(detail.pauses) == 1
        assert [p.display_name for p in detail.participants] == ["Caller 2"]
        db.submit(lambda: catalog.add_pause("rec-2", None, PauseInterval(start_time=1.8e9 + 20))).result()
        entries = db.submit(lambda: query_entries(db.connection)).result()
        assert entries[-1].hash == head
        # appending goes on from the copied head
        nxt = db.submit(
            lambda: AuditLog(db).append_now("admin", "admin", "t.after", None, "ok", None)
        ).result()
        assert nxt.seq == 4 and nxt.prev_hash == head
    finally:
        db.close()

    # a second copy into the same (no longer empty) database is refused, nothing written
    assert main(["catalog-copy", "--from", str(path), "--to", url]) == 2
    assert "the target catalog is not empty" in capsys.readouterr().err
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM recordings").fetchone() == (3,)
