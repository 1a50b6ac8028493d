"""Webhooks kept in the catalog by a node that has no webhook endpoints, sent once by an API node.

A worker running the fleet's lifecycle passes (recorder/jobs/lifecycle.py) has no webhook secrets: its
`recording.deleted` goes into `pending_webhooks` under the event's fixed webhook id (kept once however
often a resumed deletion keeps it). Every API node with webhooks looks for them beside the exports the
workers ended (recorder/lifecycle/service.py): each is claimed first by a conditional UPDATE (one node
wins), then written to that node's outbox under the same id; a sent event is removed after a week.
"""

from __future__ import annotations

import time

from recorder.api.db import Database
from recorder.lifecycle.deletion import Publish
from recorder.webhooks.events import WebhookEvent

BATCH = 100
"""Events one API node claims at a time."""
KEEP_SENT = 7 * 86400.0
"""Seconds a sent event stays (who sent it, when), then it is removed."""


class PendingWebhooks:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def keep(self, event: WebhookEvent, msg_id: str) -> None:
        """(a node without webhooks: a `Publish`) Keep the event for an API node to send."""
        body = event.model_dump_json()
        await self.db.run(
            lambda: self.db.connection.execute(
                "INSERT INTO pending_webhooks (msg_id, event, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (msg_id) DO NOTHING",
                (msg_id, body, time.time()),
            )
        )

    async def send(self, node: str, publish: Publish) -> int:
        """(an API node with webhooks) Claim the kept events nobody sent and publish them; how many."""

        def claim() -> list[tuple[str, str]]:
            c = self.db.connection
            c.execute("DELETE FROM pending_webhooks WHERE sent_at < ?", (time.time() - KEEP_SENT,))
            rows = c.execute(
                "SELECT msg_id, event FROM pending_webhooks WHERE sent_at IS NULL"
                " ORDER BY created_at LIMIT ?",
                (BATCH,),
            ).fetchall()
            return [
                (r["msg_id"], r["event"])
                for r in rows
                if c.execute(
                    "UPDATE pending_webhooks SET sent_by = ?, sent_at = ?"
                    " WHERE msg_id = ? AND sent_at IS NULL",
                    (node, time.time(), r["msg_id"]),
                ).rowcount
                == 1
            ]

        claimed = await self.db.run(claim)
        for msg_id, body in claimed:
            await publish(WebhookEvent.model_validate_json(body), msg_id)
        return len(claimed)
