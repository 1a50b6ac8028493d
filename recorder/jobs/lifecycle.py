"""Lifecycle passes on the worker nodes of a fleet (`lifecycle.run_on = "workers"`).

A node with the worker role and not the api role runs the periodic passes (holds to the store, due
deletions, export schedules, expired downloads) with a `Lifecycle` of its own: its own catalog connection,
the store of its archive settings (not started: no spool, no webhooks), one pass at a time across the
fleet under the same advisory lock as the API nodes' passes (recorder/lifecycle/fleet_pass.py). Export
schedules it fires are queued (`ExportDispatch`) and announced by an API node, as every queued export.
The API nodes then run no pass (recorder/jobs/fleet.py); `POST /v1/lifecycle/run` on one still runs a
pass there, under the lock.

A worker has no webhook secrets: the `recording.deleted` of its deletions are kept in the catalog
(recorder/lifecycle/pending.py) and sent once by an API node with webhooks; the audit entries of the
deletions are written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recorder.jobs.exports import ExportDispatch, open_worker_catalog
from recorder.lifecycle.service import Lifecycle

if TYPE_CHECKING:
    import procrastinate

    from recorder.api.db import Database
    from recorder.service.settings import ServiceSettings


def open_worker_lifecycle(settings: ServiceSettings, app: procrastinate.App) -> tuple[Lifecycle, Database]:
    """(blocking) The worker's lifecycle and its catalog connection (closed by the caller)."""
    db, catalog, audit, archive = open_worker_catalog(settings)
    lifecycle = Lifecycle(
        settings.lifecycle,
        settings.data_dir,
        db,
        catalog,
        audit,
        [archive] if archive is not None else [],
        settings.data_dir / "recordings",
        lambda _rid: False,  # nothing is recorded here; only finished recordings are ever due
    )
    lifecycle.exports.queue = ExportDispatch(app)
    lifecycle.exports.announces = False
    lifecycle.follows = False
    lifecycle.deletion.publish = lambda: lifecycle.pending.keep  # sent by an API node
    return lifecycle, db
