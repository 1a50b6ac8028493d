"""The recorder fleet (docs/fleet.md): recorder nodes registered with a heartbeat, the node that records
each recording, and what a recording's failure left (the segments closed before its recorder went silent).

- `recorders`: one row per node name; `incarnation` is the run that holds the name now (a new random
  token per start), `heartbeat_at` its last sign of life, `stopped_at` set by a clean stop, `dead_at` set by
  the peer that found it silent for longer than fleet.dead_after_seconds.
- `recordings.recorder`: the node recording it; `recordings.failure`: why it failed and what was
  recovered (JSON, recorder/fleet/registry.py's RecordingFailure), NULL unless it failed that way.
- `recording_segments`: every closed segment (hashed, on the recorder's disk, queued for upload), so a
  peer can say what a dead recorder's recording holds without reaching that recorder's disk.

The same statements on SQLite and PostgreSQL (only the float type's spelling differs).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _statements(real: str, integer: str) -> list[str]:
    return [
        f"""
        CREATE TABLE recorders (
            node TEXT PRIMARY KEY,
            incarnation TEXT NOT NULL,
            sfu TEXT NOT NULL,
            rtp_port_min {integer} NOT NULL,
            rtp_port_max {integer} NOT NULL,
            version TEXT NOT NULL,
            started_at {real} NOT NULL,
            heartbeat_at {real} NOT NULL,
            stopped_at {real},
            dead_at {real}
        )
        """,
        "ALTER TABLE recordings ADD COLUMN recorder TEXT",
        "ALTER TABLE recordings ADD COLUMN failure TEXT",
        "CREATE INDEX recordings_recorder ON recordings (recorder, status)",
        f"""
        CREATE TABLE recording_segments (
            recording_id TEXT NOT NULL,
            track TEXT NOT NULL,
            idx {integer} NOT NULL,
            path TEXT NOT NULL,
            size {integer} NOT NULL,
            sha256 TEXT NOT NULL,
            closed_at {real} NOT NULL,
            PRIMARY KEY (recording_id, track, idx)
        )
        """,
    ]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        statements = _statements("REAL", "INTEGER")
    else:
        statements = _statements("DOUBLE PRECISION", "BIGINT")
    for statement in statements:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the catalog is migrated forward only")
