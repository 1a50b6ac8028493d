"""Recording policy: a global default (record every room, or only rooms enabled) and per-room settings,
kept in the catalog and applied at once to the SFU bridge (`RoomControl`, which JanusBridge is)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

from recorder.api.auth import SHARED_REFRESH_SECONDS
from recorder.api.db import Database
from recorder.api.models import RoomPolicy, StartRequest
from recorder.capture.policy import CAPTURE_TAG, capture_tag
from recorder.recording import RecordingInfo
from recorder.service.settings import JanusSettings
from recorder.transcripts.settings import REDACT_TAG, TRANSCRIBE_TAG, on_off

log = logging.getLogger(__name__)

Default = Literal["all", "enabled"]


class RoomControl(Protocol):
    """What the policy needs of the SFU bridge: JanusBridge's `records`, `set_recording`, the per-room
    overrides it consults and the publishers it knows (recorded or not)."""

    room_policy: dict[str, bool]

    @property
    def settings(self) -> JanusSettings: ...

    @property
    def publishers(self) -> Mapping[str, Mapping[str, object]]: ...

    def records(self, room: str) -> bool: ...

    async def set_recording(self, room: str, on: bool) -> None: ...


class PolicyStore:
    def __init__(self, db: Database, default: Default | None, janus: JanusSettings) -> None:
        configured = janus.record_rooms
        self.default: Default = default or ("all" if configured == "all" else "enabled")
        self.configured: set[str] = set() if configured == "all" else set(configured)
        self.rooms: dict[str, RoomPolicy] = {}
        self.pending: dict[str, StartRequest] = {}
        """What POST /rooms/{room}/start asked for the room's next recording (call id, tags)."""
        self.db = db
        self._applying = asyncio.Lock()  # one apply at a time: the API's and the refresh's
        self._refresh: asyncio.Task[None] | None = None

    async def load(self) -> None:
        def read() -> tuple[str | None, dict[str, RoomPolicy]]:
            c = self.db.connection
            row = c.execute("SELECT value FROM policy WHERE name = 'default'").fetchone()
            rooms = {
                r["room_id"]: RoomPolicy.model_validate_json(r["policy"])
                for r in c.execute("SELECT room_id, policy FROM room_policy")
            }
            return (json.loads(row["value"]) if row else None), rooms

        stored, self.rooms = await self.db.run(read)
        if stored == "all":
            self.default = "all"
        elif stored == "enabled":
            self.default = "enabled"

    def wants(self, room: str) -> bool:
        policy = self.rooms.get(room)
        if policy is not None and policy.record is not None:
            return policy.record
        return self.default == "all" or room in self.configured

    def room(self, room: str) -> RoomPolicy:
        return self.rooms.get(room) or RoomPolicy()

    async def set_default(self, default: Default) -> None:
        def write() -> None:
            self.db.connection.execute(
                "INSERT OR REPLACE INTO policy (name, value) VALUES ('default', ?)", (json.dumps(default),)
            )

        await self.db.run(write)
        self.default = default

    async def set_room(self, room: str, policy: RoomPolicy) -> None:
        data = policy.model_dump_json()

        def write() -> None:
            self.db.connection.execute(
                "INSERT OR REPLACE INTO room_policy (room_id, policy, updated_at) VALUES (?, ?, ?)",
                (room, data, time.time()),
            )

        await self.db.run(write)
        self.rooms[room] = policy

    # -- applying -------------------------------------------------------------------------------------

    def install(self, control: RoomControl) -> None:
        """At start-up: the bridge consults the default through its settings and the rooms' overrides."""
        control.settings.record_rooms = "all" if self.default == "all" else sorted(self.configured)
        control.room_policy.clear()
        for room, policy in self.rooms.items():
            if policy.record is not None:
                control.room_policy[room] = policy.record

    async def apply(self, control: RoomControl, rooms: Iterable[str]) -> list[str]:
        """Bring the rooms' recording in line with the policy at once; returns the rooms switched."""
        async with self._applying:
            return await self._apply(control, sorted(set(rooms)))

    async def _apply(self, control: RoomControl, rooms: list[str]) -> list[str]:
        before = {room: control.records(room) for room in rooms}  # under the policy as it was
        control.settings.record_rooms = "all" if self.default == "all" else sorted(self.configured)
        switched = []
        for room in rooms:
            wanted = self.wants(room)
            try:
                if before[room] != wanted:
                    await control.set_recording(room, wanted)
                    switched.append(room)
            finally:
                record = self.room(room).record
                if record is None:
                    control.room_policy.pop(room, None)
                else:
                    control.room_policy[room] = record
        return switched

    # -- a catalog shared by several nodes (PostgreSQL) ----------------------------------------------------

    def follow(self, control: RoomControl | None, interval: float = SHARED_REFRESH_SECONDS) -> None:
        """Read the policy again every `interval` seconds until `close`, and apply what another node
        changed to this node's rooms (an API node without an SFU only keeps its answers current)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self._refresh_once(control)
                except Exception as exc:  # the catalog or the SFU unreachable a moment: next time
                    log.warning("recording policy: cannot follow the shared catalog: %s", exc)

        if self._refresh is None:
            self._refresh = asyncio.create_task(loop(), name="policy-refresh")

    async def _refresh_once(self, control: RoomControl | None) -> list[str]:
        default, rooms = self.default, dict(self.rooms)
        await self.load()
        changed = {r for r in rooms.keys() | self.rooms.keys() if rooms.get(r) != self.rooms.get(r)}
        if default != self.default and control is not None:
            changed |= set(control.publishers) | set(control.room_policy)
        if not changed or control is None:
            return []
        switched = await self.apply(control, changed)
        if switched:
            log.info("recording policy: changed elsewhere, rooms switched here: %s", ", ".join(switched))
        return switched

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
            self._refresh = None

    def start_hook(self, info: RecordingInfo) -> None:
        """CatalogSink start hook: a new recording gets its room's tags and what /start asked for."""
        room = info.room_id
        if room is None:
            return
        policy = self.rooms.get(room)
        if policy is not None:
            info.metadata = {**policy.metadata, **info.metadata}
            if policy.outputs:
                info.metadata.setdefault("outputs", ",".join(o.value for o in policy.outputs))
            if policy.capture is not None:
                info.metadata.setdefault(CAPTURE_TAG, capture_tag(policy.capture))
            if policy.encryption_recipients:
                info.encryption_recipients = list(policy.encryption_recipients)
            if policy.transcribe is not None:
                info.metadata.setdefault(TRANSCRIBE_TAG, on_off(policy.transcribe))
            if policy.redact is not None:
                info.metadata.setdefault(REDACT_TAG, on_off(policy.redact))
        pending = self.pending.pop(room, None)
        if pending is not None:
            info.metadata.update(pending.metadata)
            if pending.call_id is not None:
                info.call_id = pending.call_id
