"""Fixtures: a real Janus 1.1.2 shared by the API tests, and a connected client per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from janus_fixture import FAST_BACKOFF, JanusServer, start_or_skip

from janus_bridge.admin import JanusAdminClient
from janus_bridge.client import JanusClient


@pytest.fixture(scope="session")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    """One Janus for the API tests (no event handlers, default session timeout)."""
    server = start_or_skip(JanusServer(tmp_path_factory.mktemp("janus")))
    yield server
    server.stop()


@pytest.fixture
async def client(janus: JanusServer) -> AsyncIterator[JanusClient]:
    c = JanusClient(janus.ws_url, request_timeout=5.0, backoff=FAST_BACKOFF)
    await c.connect()
    yield c
    await c.close()


@pytest.fixture
async def admin(janus: JanusServer) -> AsyncIterator[JanusAdminClient]:
    a = JanusAdminClient(janus.admin_url, janus.admin_secret, request_timeout=5.0, backoff=FAST_BACKOFF)
    await a.connect()
    yield a
    await a.close()
