"""Search at scale: a maintained participant count per recording and an index per sort the search offers.

`recordings.participant_count` (how many participants a recording has; kept by Catalog.upsert_participant)
replaces a correlated COUNT(*) per recording when sorting by participants (14 s at 1,000,000 recordings in
PostgreSQL). Each sort key gets an index ending in recording_id (the tie-break), so a page sorted by it
walks the index and stops after the page instead of sorting every match; the live recordings (no
duration or end yet: sorted as if finishing now) get small partial indexes of their own, read by the
search's second branch (recorder/api/search.py). The same statements on both dialects.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    "CREATE INDEX recordings_participant_count ON recordings (participant_count, recording_id)",
    "CREATE INDEX recordings_bytes ON recordings (bytes, recording_id)",
    "CREATE INDEX recordings_status_id ON recordings (status, recording_id)",
    "CREATE INDEX recordings_room_sort ON recordings (COALESCE(room_id, ''), recording_id)",
    "CREATE INDEX recordings_duration ON recordings (duration, recording_id)",
    "CREATE INDEX recordings_finished ON recordings (finished_at, recording_id)",
    "CREATE INDEX recordings_live_duration ON recordings (started_at) WHERE duration IS NULL",
    "CREATE INDEX recordings_live_finished ON recordings (started_at) WHERE finished_at IS NULL",
)


def upgrade() -> None:
    bind = op.get_bind()
    integer = "BIGINT" if bind.dialect.name == "postgresql" else "INTEGER"
    bind.exec_driver_sql(f"ALTER TABLE recordings ADD COLUMN participant_count {integer} NOT NULL DEFAULT 0")
    if bind.dialect.name == "postgresql":  # one pass over participants, not a count per recording
        bind.exec_driver_sql(
            "UPDATE recordings r SET participant_count = p.n FROM (SELECT recording_id, COUNT(*) AS n"
            " FROM participants GROUP BY recording_id) p WHERE r.recording_id = p.recording_id"
        )
    else:
        bind.exec_driver_sql(
            "UPDATE recordings SET participant_count = (SELECT COUNT(*) FROM participants p"
            " WHERE p.recording_id = recordings.recording_id)"
        )
    # recordings_status (status) is a prefix of recordings_status_id: the new one serves its filters
    bind.exec_driver_sql("DROP INDEX recordings_status")
    for statement in INDEXES:
        bind.exec_driver_sql(statement)
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("ANALYZE recordings")


def downgrade() -> None:
    raise NotImplementedError("the catalog is migrated forward only")
