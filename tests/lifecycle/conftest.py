"""Fixtures of the lifecycle tests: a vault (catalog + store + lifecycle parts) on the local store."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.append(
    str(Path(__file__).parent)
)  # vault, beside this file (appended: "conftest" stays tests/api's)

from vault import Vault, close, open_vault

from recorder.storage.local import LocalStore


@pytest.fixture
async def vault(tmp_path: Path, catalog_url: str | None) -> AsyncIterator[Vault]:
    made = open_vault(tmp_path, LocalStore(tmp_path / "store"), catalog_url)
    yield made
    await close(made)
