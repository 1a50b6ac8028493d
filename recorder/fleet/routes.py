"""GET /v1/recorders: the recorder fleet as the catalog knows it (admin, auditor)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recorder import __version__
from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.registry import Call, Registry
from recorder.fleet import registry as fleet
from recorder.fleet.models import RecorderList, RecorderOut

READERS = {Role.AUDITOR}
T0 = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def _example(node: str, sfu: str, heartbeat: datetime, dead: bool, busy: int) -> RecorderOut:
    return RecorderOut(
        node=node,
        sfu=f"ws://{sfu}:8188",
        rtp_port_min=40000,
        rtp_port_max=40999,
        version=__version__,
        started_at=T0,
        heartbeat_at=heartbeat,
        dead_at=heartbeat + timedelta(seconds=30) if dead else None,
        state="dead" if dead else "alive",
        recordings_in_progress=busy,
    )


examples.BODIES[RecorderList] = RecorderList(
    recorders=[
        _example("callvault-recorder-0", "janus-0", T0 + timedelta(days=2), False, 12),
        _example("callvault-recorder-1", "janus-1", T0 + timedelta(days=1), True, 0),
    ],
    alive=1,
    dead=1,
)


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
