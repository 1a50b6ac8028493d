"""Helpers of the control API tests: a stand-in SFU bridge and free ports."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from recorder.api.app import ControlApi
from recorder.api.site import HttpSite
from recorder.models import Codec
from recorder.recording import ParticipantInfo
from recorder.service.manager import RecordingManager, StreamRequest
from recorder.service.settings import JanusSettings, ServiceSettings

ADMIN_KEY = "bootstrap-admin-key-for-tests-0123456789abcdef"


def free_port_base(span: int = 40) -> int:
    """An even port with `span` ports after it that were free a moment ago."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1] & ~1
        if base + span > 65535 or base < 20000:
            continue
        try:
            socks = []
            for port in range(base, base + span):
                t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(t)
                t.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for t in socks:
                t.close()
        return base
    raise RuntimeError("no free UDP port range")


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


ApiFactory = Callable[..., Any]
"""`make_api` (tests/api/conftest.py): `await make_api(sfu=True, sinks=[...], **api_settings)` -> Api."""
