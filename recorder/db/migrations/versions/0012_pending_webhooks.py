"""Webhooks a node without webhook endpoints leaves for the API nodes to send (both dialects).

`pending_webhooks`: one row per event, under its fixed webhook id (`msg_id`, the primary key: an event
kept twice is kept once), its body as JSON, and once an API node claimed it (a conditional UPDATE of
`sent_by`/`sent_at`: one node wins), which node sent it and when. A worker running the fleet's lifecycle
passes (`lifecycle.run_on = "workers"`) keeps its `recording.deleted` here (recorder/lifecycle/pending.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    real = "REAL" if bind.dialect.name == "sqlite" else "DOUBLE PRECISION"
    bind.exec_driver_sql(
        "CREATE TABLE pending_webhooks (msg_id TEXT PRIMARY KEY, event TEXT NOT NULL,"
        f" created_at {real} NOT NULL, sent_by TEXT, sent_at {real})"
    )
    bind.exec_driver_sql(
        "CREATE INDEX pending_webhooks_unsent ON pending_webhooks (created_at) WHERE sent_at IS NULL"
    )


def downgrade() -> None:
    raise NotImplementedError("the catalog is migrated forward only")
