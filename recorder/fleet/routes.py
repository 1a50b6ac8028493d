"""GET /v1/recorders: the recorder fleet as the catalog knows it (admin, auditor)."""

from __future__ import annotations

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.registry import Call, Registry
from recorder.fleet import registry as fleet
from recorder.fleet.registry import RecorderList

READERS = {Role.AUDITOR}


def register(reg: Registry, ctx: ApiContext) -> None:
    dead_after = ctx.manager.settings.fleet.dead_after_seconds
    db = ctx.db

    @reg.add(
        "GET",
        "/v1/recorders",
        READERS,
        "The recorder nodes of the fleet: SFU, port range, version, last heartbeat, alive or dead",
        "operations",
        None,
        response=RecorderList,
    )
    async def list_recorders(call: Call) -> RecorderList:
        return await db.run(lambda: fleet.list_recorders(db.connection, db.dialect, dead_after))
