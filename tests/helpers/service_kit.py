"""Driving a running `callvault serve` from tests: free ports, JSON over HTTP, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from janus_fixture import ADMIN_KEY, FAST_BACKOFF, ROOM, ROOM_SECRET, JanusServer, free_port

from janus_bridge.bridge import JanusBridge
from janus_bridge.client import JanusClient
from recorder.api.settings import ApiSettings
from recorder.config import RecorderSettings
from recorder.service.manager import RecordingManager
from recorder.service.settings import JanusSettings, ServiceSettings

API_KEY = "e2e-admin-key-0123456789abcdefghijklmnopq"
"""The bootstrap admin key tests give the service (settings api.admin_key); `client()` sends it."""


def client() -> aiohttp.ClientSession:
    """An HTTP client that presents the tests' admin key, as /v1/status and the API require."""
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})


def free_tcp_port() -> int:
    """A port for a server the test starts later (janus_fixture.free_port: outside the ephemeral range)."""
    return free_port()


def free_port_base(span: int = 40) -> int:
    """An even UDP port with `span` ports after it that were free a moment ago."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1] & ~1
        if base + span > 65535 or base < 20000:
            continue
        socks: list[socket.socket] = []
        try:
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


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def until(check: Callable[[], Awaitable[bool]], within: float, step: float = 0.1) -> None:
    """Wait until `check()` holds; TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(step)


async def absent(path: Path) -> bool:
    """For `until`: the file or folder is gone."""
    return not await asyncio.to_thread(path.exists)


async def wait_ready(http: aiohttp.ClientSession, base: str, within: float = 20) -> None:
    async def ready() -> bool:
        try:
            return (await get_json(http, f"{base}/readyz"))[0] == 200
        except aiohttp.ClientError:
            return False

    await until(ready, within)


async def wait_finished(http: aiohttp.ClientSession, base: str, within: float = 20) -> list[dict[str, Any]]:
    """The finished recordings /v1/status lists, once there is at least one."""

    async def finished() -> bool:
        try:
            return bool((await get_json(http, f"{base}/v1/status"))[1]["finished"])
        except aiohttp.ClientError:
            return False

    await until(finished, within)
    recordings: list[dict[str, Any]] = (await get_json(http, f"{base}/v1/status"))[1]["finished"]
    return recordings


def janus_service_settings(
    tmp_path: Path,
    janus_ws_url: str,
    port: int,
    rtp_ports: tuple[int, int],
    segment_seconds: float = 2.0,
    **overrides: Any,
) -> ServiceSettings:
    """`callvault serve` on 127.0.0.1:`port` following a test Janus (its admin key and room secret, the
    events token "evt", an empty room finished after 1 s), data in `tmp_path/data`; `overrides` are
    further ServiceSettings fields."""
    return ServiceSettings(
        data_dir=tmp_path / "data",
        http_host="127.0.0.1",
        http_port=port,
        rtp_bind="127.0.0.1",
        rtp_port_min=rtp_ports[0],
        rtp_port_max=rtp_ports[1],
        api=ApiSettings(admin_key=API_KEY),
        recorder=RecorderSettings(segment_seconds=segment_seconds),
        janus=JanusSettings(
            ws_url=janus_ws_url,
            admin_key=ADMIN_KEY,
            room_secret=ROOM_SECRET,
            events_token="evt",
            empty_room_grace=1.0,
        ),
        **overrides,
    )


def bridge_settings(
    janus: JanusServer, data_dir: Path, rtp_ports: tuple[int, int] = (47000, 47999), **janus_fields: Any
) -> ServiceSettings:
    """Settings of a service following a test Janus (its admin key and room secret, the events token
    "evt", recording the test room), RTP on 127.0.0.1; `janus_fields` override JanusSettings fields."""
    fields: dict[str, Any] = {
        "ws_url": janus.ws_url,
        "admin_key": janus.admin_key,
        "room_secret": ROOM_SECRET,
        "record_rooms": [str(ROOM)],
        "events_token": "evt",
        **janus_fields,
    }
    return ServiceSettings(
        data_dir=data_dir,
        rtp_bind="127.0.0.1",
        rtp_port_min=rtp_ports[0],
        rtp_port_max=rtp_ports[1],
        janus=JanusSettings(**fields),
    )


@contextlib.asynccontextmanager
async def bridge_following(
    settings: ServiceSettings, empty_room_grace: float = 0.2
) -> AsyncIterator[JanusBridge]:
    """A started JanusBridge with its RecordingManager; shut down (recordings finished) on exit."""
    manager = RecordingManager(settings)
    client = JanusClient(settings.janus.ws_url, request_timeout=5.0, backoff=FAST_BACKOFF)
    bridge = JanusBridge(manager, settings.janus, client, empty_room_grace=empty_room_grace)
    await bridge.start()
    try:
        yield bridge
    finally:
        await manager.shutdown()
        await bridge.close()
