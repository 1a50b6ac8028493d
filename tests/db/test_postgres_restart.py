"""PostgreSQL restarted under a running node: the catalog's next statement reconnects, nothing written
before is lost, and audit appends (transactions) go on in the same chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_kit import PostgresServer, running_server

from recorder.api.audit import AuditLog, query_entries, verify_audit_chain
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import RecordingStatus
from recorder.recording import RecordingInfo


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (the session's keeps running for the others)."""
    with running_server() as server:
        yield server


def test_the_catalog_reconnects_after_a_restart(own_server: PostgresServer, tmp_path: Path) -> None:
    db = Database(own_server.create_database())
    catalog, audit = Catalog(db), AuditLog(db)
    try:
        first = RecordingInfo(recording_id="rec-before", folder=tmp_path / "a", started_at=1.8e9)
        db.submit(lambda: catalog.upsert_recording(first, RecordingStatus.RECORDING)).result()
        db.submit(lambda: audit.append_now("admin", "admin", "t.before", "rec-before", "ok", None)).result()

        own_server.stop_server()
        own_server.run_server()

        second = RecordingInfo(recording_id="rec-after", folder=tmp_path / "b", started_at=1.8e9 + 1)
        db.submit(lambda: catalog.upsert_recording(second, RecordingStatus.RECORDING)).result()
        db.submit(lambda: audit.append_now("admin", "admin", "t.after", "rec-after", "ok", None)).result()
        own_server.stop_server()
        own_server.run_server()
        db.submit(lambda: audit.append_now("admin", "admin", "t.again", None, "ok", None)).result()

        assert db.submit(lambda: catalog.get("rec-before")).result() is not None
        assert db.submit(lambda: catalog.get("rec-after")).result() is not None
        entries = db.submit(lambda: query_entries(db.connection)).result()
        assert [e.action for e in entries] == ["t.before", "t.after", "t.again"]
        assert verify_audit_chain(entries) == []
    finally:
        db.close()
