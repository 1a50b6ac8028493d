"""Fixtures of the control API tests: a real RecordingManager with real settings in a temporary data
folder, the service's aiohttp app with the control API mounted, served on 127.0.0.1 by the site
`callvault serve` uses (its limits from the api settings), and one API key per role created through the API
itself."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

sys.path.insert(1, str(Path(__file__).parent))  # api_kit, beside this file

from api_kit import ADMIN_KEY, Api, ApiFactory, FakeSfu, service_settings

from recorder.api.app import ControlApi
from recorder.api.auth import Role
from recorder.api.site import HttpSite
from recorder.recording import RecordingSink
from recorder.service.app import build_app
from recorder.service.manager import RecordingManager


@pytest.fixture
async def make_api(tmp_path: Path, catalog_url: str | None) -> AsyncIterator[ApiFactory]:
    """`await make_api(sfu=True, sinks=[...], **api_settings)`: a served control API (its catalog on
    PostgreSQL in the modules marked postgres_kit.BACKENDS)."""
    opened: list[tuple[Api, web.AppRunner]] = []

    async def make(sfu: bool = True, sinks: list[RecordingSink] | None = None, **api: Any) -> Api:
        if catalog_url is not None:
            api.setdefault("catalog_url", catalog_url)
        settings = service_settings(tmp_path, **api)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        manager = RecordingManager(settings, sinks)
        fake = FakeSfu(manager, settings.janus) if sfu else None
        app = build_app(manager, [], {})
        control_api = await ControlApi.open(settings, manager, control=fake)
        manager.sinks.insert(0, control_api.sink)
        control_api.mount(app)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = HttpSite(runner, "127.0.0.1", 0, settings.api)
        await site.start()
        http = aiohttp.ClientSession()
        made = Api(f"http://127.0.0.1:{site.port}", http, control_api, manager, fake, site)
        made.keys["admin"] = ADMIN_KEY
        for role in Role:
            if role is not Role.ADMIN:
                new = {"name": f"{role.value}-1", "role": role}
                status, body = await made.call("POST", "/v1/keys", json=new)
                assert status == 201, body
                made.keys[role.value] = body["key"]
        opened.append((made, runner))
        return made

    yield make
    for made, runner in opened:
        await made.http.close()
        await made.manager.shutdown()
        await runner.cleanup()
        await made.api.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    made: Api = await make_api()
    return made
