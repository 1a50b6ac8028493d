"""Shared fixtures: a real S3 server (moto_server) for the whole session, with a plain and a locked bucket."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test helper modules beside this file (s3_fixture) are importable whatever pytest's pythonpath is.
if str(Path(__file__).parent) not in sys.path:
    sys.path.append(str(Path(__file__).parent))

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
