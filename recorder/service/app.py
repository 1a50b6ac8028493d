"""The HTTP face of `callvault serve`: health, readiness, status and the Janus event-handler endpoints."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aiohttp import web

from recorder import __version__
from recorder.service.manager import RecordingManager

EVENTS_HTTP_PATH = "/janus/events"
EVENTS_WS_PATH = "/janus/events/ws"


class ReadinessCheck:
    """A named condition `/readyz` reports; `reason()` is None when it holds."""

    def __init__(self, name: str, reason: Any) -> None:
        self.name = name
        self.reason = reason


def build_app(
    manager: RecordingManager,
    checks: list[ReadinessCheck],
    counters: dict[str, Callable[[], dict[str, int]]] | None = None,
    warnings: dict[str, str] | None = None,
) -> web.Application:
    """`counters`: named callables whose figures /v1/status reports (event intake, bridge...);
    `warnings`: what /readyz reports beside readiness without failing it (an open event intake...)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    sources = counters if counters is not None else {}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(request: web.Request) -> web.Response:
        problems = {c.name: r for c in checks if (r := c.reason()) is not None}
        data_dir = manager.settings.data_dir
        if not os.access(data_dir, os.W_OK):
            problems["storage"] = f"{data_dir} is not writable"
        status = 200 if not problems else 503
        body: dict[str, Any] = {"ready": not problems, "problems": problems}
        if warnings:
            body["warnings"] = dict(warnings)
        return web.json_response(body, status=status)

    async def status(request: web.Request) -> web.Response:
        rooms = {
            room: {
                "recording_id": r.info.recording_id,
                "folder": str(r.info.folder),
                "participants": {pid: [s.track for s in streams] for pid, streams in r.participants.items()},
            }
            for room, r in manager.rooms.items()
        }
        finished = [
            {"room": i.room_id, "recording_id": i.recording_id, "folder": str(i.folder)}
            for i in manager.finished
        ]
        return web.json_response(
            {
                **{name: get() for name, get in sources.items()},
                "rooms": rooms,
                "finished": finished,
                "active_streams": manager.active_streams,
                "ports_in_use": manager.ports.in_use,
            }
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/v1/status", status)
    return app
