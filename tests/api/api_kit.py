"""Helpers of the control API tests: a stand-in SFU bridge and free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from service_kit import free_port_base

from recorder.api.app import ControlApi
from recorder.api.auth import Role
from recorder.api.site import HttpSite
from recorder.models import Codec
from recorder.recording import ParticipantInfo, RecordingSink
from recorder.service.app import build_app
from recorder.service.manager import RecordingManager, StreamRequest
from recorder.service.settings import JanusSettings, ServiceSettings

ADMIN_KEY = "bootstrap-admin-key-for-tests-0123456789abcdef"


class FakeSfu:
    """Stands in for JanusBridge (the RoomControl the API drives): publishers per room; recording a room
    adds its publishers to the real RecordingManager (real sockets), not recording it finishes the room's
    recording. Same `records` rule as the bridge: per-room override, else the settings."""

    def __init__(self, manager: RecordingManager, settings: JanusSettings) -> None:
        self.manager = manager
        self.settings = settings
        self.room_policy: dict[str, bool] = {}
        self.publishers: dict[str, dict[str, str | None]] = {}
        self.calls: list[tuple[str, bool]] = []

    def records(self, room: str) -> bool:
        return self.room_policy.get(room, self.settings.records(room))

    async def set_recording(self, room: str, on: bool) -> None:
        self.calls.append((room, on))
        self.room_policy[room] = on
        if on:
            for publisher in list(self.publishers.get(room, {})):
                await self._forward(room, publisher)
        else:
            await self.manager.finish_room(room)

    async def publish(self, room: str, publisher: str, display: str | None = None) -> None:
        """A participant starts publishing VP8 video (recorded if the room is)."""
        self.publishers.setdefault(room, {})[publisher] = display
        if self.records(room):
            await self._forward(room, publisher)

    async def _forward(self, room: str, publisher: str) -> None:
        display = self.publishers[room][publisher]
        await self.manager.add_participant(
            room,
            ParticipantInfo(id=publisher, display_name=display),
            [StreamRequest(mid="0", codec=Codec.VP8, payload_type=96)],
        )

    def port_of(self, room: str, publisher: str) -> int:
        (ports,) = self.manager.participant_streams(room, publisher)
        return ports.port


@dataclass
class Api:
    base: str
    http: aiohttp.ClientSession
    api: ControlApi
    manager: RecordingManager
    sfu: FakeSfu | None
    site: HttpSite
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, role: str | None) -> dict[str, str]:
        if role is None:
            return {}
        return {"Authorization": f"Bearer {self.keys[role]}"}

    async def call(
        self, method: str, path: str, role: str | None = "admin", json: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**self.auth(role), **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, json=json, **kw) as r:
            if r.content_type in ("application/json", "application/problem+json"):
                return r.status, await r.json(content_type=None)
            return r.status, await r.text()


def service_settings(
    tmp_path: Path, janus: dict[str, Any] | None = None, http_port: int = 8080, **api: Any
) -> ServiceSettings:
    """Settings on 127.0.0.1 in `tmp_path`, without Janus unless `janus` (its settings) is given."""
    low = free_port_base()
    return ServiceSettings(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=http_port,
        rtp_bind="127.0.0.1",
        rtp_port_min=low,
        rtp_port_max=low + 39,
        janus=janus or {"enabled": False},
        recorder={"segment_seconds": 1.0, "mux_threads": 1},
        api={"admin_key": ADMIN_KEY, **api},
    )


@asynccontextmanager
async def served_api(
    settings: ServiceSettings,
    sinks: Sequence[RecordingSink] = (),
    sfu: bool = True,
    roles: Iterable[Role] = tuple(r for r in Role if r is not Role.ADMIN),
) -> AsyncIterator[Api]:
    """The service's aiohttp app with the control API mounted, served on 127.0.0.1 by the site `callvault
    serve` uses, over a real RecordingManager (its sinks after the API's own) and a FakeSfu; one key per
    role in `roles` created through the API itself. The caller starts and stops the sinks (an archive)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manager = RecordingManager(settings, list(sinks))
    fake = FakeSfu(manager, settings.janus) if sfu else None
    app = build_app(manager, [], {})
    control = await ControlApi.open(settings, manager, control=fake)
    manager.sinks.insert(0, control.sink)
    control.mount(app)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = HttpSite(runner, "127.0.0.1", 0, settings.api)
    await site.start()
    made = Api(f"http://127.0.0.1:{site.port}", aiohttp.ClientSession(), control, manager, fake, site)
    made.keys["admin"] = ADMIN_KEY
    try:
        for role in roles:
            status, body = await made.call("POST", "/v1/keys", json={"name": f"{role.value}-1", "role": role})
            assert status == 201, body
            made.keys[role.value] = body["key"]
        yield made
    finally:
        await made.http.close()
        await manager.shutdown()
        await runner.cleanup()
        await control.close()


ApiFactory = Callable[..., Any]
"""`make_api` (tests/api/conftest.py): `await make_api(sfu=True, sinks=[...], **api_settings)` -> Api."""
