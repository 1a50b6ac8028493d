"""What every route handler works with: the manager, the catalog, the policy, the bridge (when there is
one) and the archive's storage (when there is one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recorder.api.audit import AuditLog
from recorder.api.auth import KeyStore
from recorder.api.catalog import Catalog, CatalogSink
from recorder.api.db import Database
from recorder.api.files import RecordingFiles, StorageAccess
from recorder.api.policy import PolicyStore, RoomControl
from recorder.api.problems import ApiError
from recorder.api.settings import ApiSettings
from recorder.service.manager import RecordingManager, RoomRecording

if TYPE_CHECKING:
    from recorder.api.routes_reports import ReportQueue
    from recorder.fleet.commands_api import FleetRooms


@dataclass
class ApiContext:
    settings: ApiSettings
    manager: RecordingManager
    db: Database
    catalog: Catalog
    sink: CatalogSink
    policy: PolicyStore
    keys: KeyStore
    audit: AuditLog
    control: RoomControl | None = None
    fleet_rooms: FleetRooms | None = None
    """A fleet API node without an SFU: room commands go to the recorders (recorder/fleet/commands_api)."""
    reports: ReportQueue | None = None
    """A fleet API node without the worker role: workers build reports (recorder/jobs/reports.py)."""

    def storage(self) -> StorageAccess | None:
        return StorageAccess.of(self.manager.sinks)

    def live(self, recording_id: str) -> tuple[str, RoomRecording] | None:
        """The room and recording in progress with this id."""
        for room, recording in self.manager.rooms.items():
            if recording.info.recording_id == recording_id:
                return room, recording
        return None

    def require_live(self, recording_id: str) -> tuple[str, RoomRecording]:
        found = self.live(recording_id)
        if found is None:
            raise ApiError(404, f"recording {recording_id} is not in progress", "not-recording")
        return found

    async def sync_live(self) -> None:
        """Index live recordings' participants before answering a query."""
        infos = [r.info for r in self.manager.rooms.values()]
        if infos:
            await asyncio.wrap_future(self.sink.sync_live(infos))

    async def files(self, recording_id: str) -> RecordingFiles:
        detail = await self.db.run(lambda: self.catalog.get(recording_id))
        if detail is None:
            raise ApiError(404, f"no recording {recording_id}", "not-found")
        folder = await self.db.run(lambda: self.catalog.folder(recording_id))
        assert folder is not None
        return RecordingFiles(recording_id, folder, detail.started_at, detail.room_id, self.storage())
