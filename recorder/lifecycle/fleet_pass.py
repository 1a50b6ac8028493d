"""One lifecycle pass at a time across a fleet (nodes with the `api` role on one PostgreSQL catalog).

A pass (holds to the store, deletions, export schedules, expired downloads) runs only while its node holds
a PostgreSQL session advisory lock, taken on a connection of its own for the length of the pass: the other
nodes' periodic passes skip their turn while it is held, a pass asked through the API waits for it
(bounded). A node killed mid-pass loses its connection, and with it the lock; the next pass, on any node,
does the interrupted deletion again from its intent in the catalog (recorder/lifecycle/deletion.py). On
the embedded SQLite catalog (one node) there is nobody to exclude: the pass runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from recorder.api.db import Database

PASS_LOCK = 0x43_56_61_75_6C_74 + 0x10
"""pg_advisory_lock key of the lifecycle pass (beside the catalog's write and migration locks)."""


class PassBusyError(Exception):
    """Another node's pass did not end within the wait."""


@contextlib.asynccontextmanager
async def fleet_pass(db: Database, wait: float | None = None) -> AsyncIterator[bool]:
    """Hold the fleet's lifecycle lock for the block; yields whether it is held. `wait` None: only if it
    is free now (a periodic pass: False when another node's pass runs); else wait up to `wait` seconds,
    then PassBusyError."""
    conninfo = db.location.conninfo
    if db.dialect != "postgresql" or conninfo is None:
        yield True
        return
    import psycopg  # noqa: PLC0415 (the postgres extra: only a PostgreSQL catalog needs it)

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        if wait is None:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (PASS_LOCK,))).fetchone()
            held = bool(row and row[0])
        else:
            await conn.execute(f"SET lock_timeout = {max(1, int(wait * 1000))}")
            try:
                await conn.execute("SELECT pg_advisory_lock(%s)", (PASS_LOCK,))
            except psycopg.errors.LockNotAvailable as exc:
                raise PassBusyError(
                    f"a lifecycle pass of another node did not end within {wait:.0f} s"
                ) from exc
            held = True
        yield held
        # the lock goes with the connection (closed here, or by the server when the node dies)
