"""A `callvault serve` node's part in room control across a fleet (docs/fleet.md, "Room control in a
fleet"), on a PostgreSQL catalog only: an API node that follows no SFU sends room commands to the recorders
(recorder/fleet/commands_api.py); a recorder executes those addressed to it
(recorder/fleet/commands_recorder.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recorder.fleet.commands_api import FleetRooms
from recorder.fleet.commands_recorder import CommandExecutor

if TYPE_CHECKING:
    from recorder.api.app import ControlApi
    from recorder.api.policy import RoomControl
    from recorder.fleet.node import FleetNode
    from recorder.service.manager import RecordingManager
    from recorder.service.settings import ServiceSettings


class RoomCommands:
    def __init__(self, executor: CommandExecutor | None) -> None:
        self.executor = executor

    @classmethod
    def open(
        cls,
        settings: ServiceSettings,
        manager: RecordingManager,
        control: RoomControl | None,
        api: ControlApi | None,
        fleet: FleetNode | None,
    ) -> RoomCommands | None:
        """None unless the node is part of a fleet on PostgreSQL. Installs the API's FleetRooms when the
        node has the api role and no SFU bridge."""
        if fleet is None or fleet.dialect != "postgresql":
            return None
        if api is not None and control is None:
            api.ctx.fleet_rooms = FleetRooms(
                api.ctx.db,
                settings.fleet.node(),
                settings.fleet.command_timeout_seconds,
                settings.fleet.dead_after_seconds,
            )
        executor = None
        if fleet.me is not None:  # a registered recorder
            executor = CommandExecutor(
                fleet.db,
                fleet.me.node,
                manager,
                control,
                api.ctx.policy if api is not None else None,
                settings.api.catalog_location(settings.data_dir).conninfo,
                settings.fleet.command_poll_seconds,
            )
        return cls(executor)

    async def start(self) -> None:
        if self.executor is not None:
            await self.executor.start()

    async def close(self) -> None:
        if self.executor is not None:
            await self.executor.close()
