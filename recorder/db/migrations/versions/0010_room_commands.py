"""Room control across a fleet (docs/fleet.md, "Room control in a fleet"): an API node that follows no SFU
hands each room command (pause, resume, start, stop) to the recorder concerned through this table and
waits for its result.

- `room_commands`: one row per command, addressed to one recorder node (`recorder`); `state` goes
  `pending` -> `taken` (the recorder claimed it, before acting: a command is executed at most once) ->
  `done` or `failed` (`result`, JSON), or `pending` -> `expired` (nobody took it before `expires_at`, by
  the database's clock: it will never be executed). A recorder restarted with commands `taken` marks them
  `failed` (interrupted), never runs them again.

The same statements on SQLite and PostgreSQL (only the float type's spelling differs).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _statements(real: str) -> list[str]:
    return [
        f"""
        CREATE TABLE room_commands (
            command_id TEXT PRIMARY KEY,
            recorder TEXT NOT NULL,
            action TEXT NOT NULL,
            room_id TEXT NOT NULL,
            recording_id TEXT,
            participant_id TEXT,
            params TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_from TEXT NOT NULL,
            state TEXT NOT NULL,
            result TEXT,
            created_at {real} NOT NULL,
            expires_at {real} NOT NULL,
            taken_at {real},
            finished_at {real}
        )
        """,
        "CREATE INDEX room_commands_recorder ON room_commands (recorder, state, created_at)",
    ]


def upgrade() -> None:
    bind = op.get_bind()
    statements = _statements("REAL" if bind.dialect.name == "sqlite" else "DOUBLE PRECISION")
    for statement in statements:
        bind.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the catalog is migrated forward only")
