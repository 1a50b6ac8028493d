"""Shared fixtures: a real S3 server (moto_server) for the whole session, with a plain and a locked bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s3_fixture import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        server.create_buckets()
        yield server
    finally:
        server.stop()
