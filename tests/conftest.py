"""Shared fixtures: a real S3 server (moto_server) for the whole session, with a plain and a locked bucket."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# The repository root first: with tests/ on sys.path (pytest pythonpath), the folders tests/recorder and
# tests/janus_bridge would otherwise be imported as namespace packages instead of the real ones, because
# the editable install's finder comes after the path finder.
_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)


def _load_helper(name: str) -> None:
    """Make tests/<name>.py importable as `name` without putting tests/ on sys.path (its `recorder`
    folder would shadow the package)."""
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load_helper("s3_fixture")

# `callvault serve` builds a composite of every finished recording by default; the tests that are about
# something else (most start the service) turn that off here, subprocesses included. Tests of composites
# pass their composite settings explicitly, which wins over the environment.
os.environ["CALLVAULT_COMPOSITE__ENABLED"] = "false"

from archive_kit import Receiver  # noqa: E402
from postgres_kit import PostgresServer, running_server  # noqa: E402
from s3_fixture import MotoServer, free_port  # noqa: E402

from recorder.webhooks import generate_secret  # noqa: E402


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1: a real HTTP server checking Standard Webhooks signatures."""
    r = Receiver(free_port(), generate_secret())
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        server.create_buckets()
        yield server
    finally:
        server.stop()


# -- the catalog on PostgreSQL (tests/helpers/postgres_kit.py): one throwaway server for the session, a
# fresh database per test; modules mark themselves with postgres_kit.BACKENDS to run on both backends.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def catalog_backend(request: pytest.FixtureRequest) -> str:
    """The catalog backend: sqlite (the default) or postgresql (parametrized by postgres_kit.BACKENDS)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def catalog_url(catalog_backend: str, request: pytest.FixtureRequest) -> str | None:
    """None on SQLite (the catalog file in the test's data folder), else a fresh PostgreSQL database's URL."""
    if catalog_backend == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()
