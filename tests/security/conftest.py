"""One Janus for the security tests that forge events against a real one (no event handlers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from janus_fixture import JanusServer, start_or_skip


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JanusServer]:
    server = start_or_skip(JanusServer(tmp_path_factory.mktemp("janus")))
    yield server
    server.stop()
