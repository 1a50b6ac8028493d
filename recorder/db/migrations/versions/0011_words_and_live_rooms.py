"""Words said, per recording (PostgreSQL), and each recorder's live rooms (both dialects).

- `recordings.words` (PostgreSQL only): the recording's whole transcript as one stripped tsvector (the
  'simple' configuration, as `transcript_segments.words`), kept by Catalog.index_transcript, with a GIN
  index. A search by words said (`q=`) finds its recordings on the recordings' own rows: the capped count
  stops after `api.search_count_limit` rows and the page walks the sort's index, instead of reading every
  matching segment to collect recording ids (recorder/api/search.py). SQLite's FTS5 segments answer as
  before. Filled here from the segments already indexed.
- `recorders.rooms`, `recorders.rooms_at`: the rooms a recorder records now (JSON: room, recording id,
  paused, participants; recorder/fleet/rooms.py), written by the recorder when they change and with its
  heartbeat, so an API node of a fleet lists them as the recorders see them (GET /v1/rooms).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

WORDS = (
    "ALTER TABLE recordings ADD COLUMN words TSVECTOR",
    "UPDATE recordings r SET words = t.words FROM (SELECT recording_id,"
    " strip(to_tsvector('simple', string_agg(text, ' '))) AS words FROM transcript_segments"
    " GROUP BY recording_id) t WHERE r.recording_id = t.recording_id",
    "CREATE INDEX recordings_words ON recordings USING GIN (words) WHERE words IS NOT NULL",
)


def upgrade() -> None:
    bind = op.get_bind()
    real = "REAL" if bind.dialect.name == "sqlite" else "DOUBLE PRECISION"
    bind.exec_driver_sql("ALTER TABLE recorders ADD COLUMN rooms TEXT")
    bind.exec_driver_sql(f"ALTER TABLE recorders ADD COLUMN rooms_at {real}")
    if bind.dialect.name == "postgresql":
        for statement in WORDS:
            bind.exec_driver_sql(statement)


def downgrade() -> None:
    raise NotImplementedError("the catalog is migrated forward only")
