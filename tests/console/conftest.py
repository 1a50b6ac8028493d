"""Fixtures of the console tests: one served service with real recordings and one headless Chromium for
the whole module (recording the call and starting the browser are the slow parts)."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(1, str(Path(__file__).parent))  # console_kit, beside this file
sys.path.insert(1, str(Path(__file__).parent.parent / "api"))  # api_kit

from console_kit import Service, chromium, record_call, served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    tmp = tmp_path_factory.mktemp("console")
    async with served(tmp) as made:
        await record_call(made, tmp)
        yield made


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots of the pages go: $CALLVAULT_TEST_ARTIFACTS/console (CI keeps that folder), else
    the test's temporary folder (the path is printed)."""
    root = os.environ.get("CALLVAULT_TEST_ARTIFACTS")
    if root:
        folder = Path(root) / "console"
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    return tmp_path_factory.mktemp("console-screenshots")
