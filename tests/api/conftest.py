"""Fixtures of the control API tests: a real RecordingManager with real settings in a temporary data
folder, the service's aiohttp app with the control API mounted, served on 127.0.0.1 by the site
`callvault serve` uses (its limits from the api settings), and one API key per role created through the API
itself."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(1, str(Path(__file__).parent))  # api_kit, beside this file

from api_kit import Api, ApiFactory, served_api, service_settings

from recorder.recording import RecordingSink


@pytest.fixture
async def make_api(tmp_path: Path, catalog_url: str | None) -> AsyncIterator[ApiFactory]:
    """`await make_api(sfu=True, sinks=[...], **api_settings)`: a served control API (its catalog on
    PostgreSQL in the modules marked postgres_kit.BACKENDS)."""
    async with contextlib.AsyncExitStack() as opened:

        async def make(sfu: bool = True, sinks: list[RecordingSink] | None = None, **api: Any) -> Api:
            if catalog_url is not None:
                api.setdefault("catalog_url", catalog_url)
            settings = service_settings(tmp_path, **api)
            made: Api = await opened.enter_async_context(served_api(settings, sinks or [], sfu=sfu))
            return made

        yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    made: Api = await make_api()
    return made
