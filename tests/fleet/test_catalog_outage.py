"""A catalog outage longer than one reconnect (a recorder's heartbeat and segment writes go on during it):
every statement while PostgreSQL is down fails with one clear error, and the first one after it is back
works again on a new connection (an earlier failed reconnect left the connection closed for good)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from postgres_kit import PostgresServer, running_server

from recorder.api.db import Database
from recorder.fleet import registry
from recorder.fleet.models import Registration


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (stopped mid-test; the session's keeps running for the others)."""
    with running_server() as server:
        yield server


def test_heartbeats_resume_after_an_outage(own_server: PostgresServer) -> None:
    db = Database(own_server.create_database())
    me = Registration(
        node="rec-a", incarnation="a1", sfu="ingest", rtp_port_min=40000, rtp_port_max=40999, version="0.1.0"
    )

    def beat() -> registry.Beat:
        return db.submit(lambda: registry.heartbeat(db.connection, db.dialect, me)).result()

    try:
        db.submit(lambda: registry.register(db.connection, db.dialect, me, 30, None)).result()
        assert beat() is registry.Beat.HELD
        own_server.stop_server()
        for _ in range(3):  # the first reconnects and fails, the next find the connection closed
            with pytest.raises(psycopg.OperationalError):
                beat()
        own_server.run_server()
        assert beat() is registry.Beat.HELD
    finally:
        db.close()
