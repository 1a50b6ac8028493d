"""Fixtures of the archive tests: reference media, a webhook receiver, a relay in front of S3, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from archive_kit import Receiver, TcpRelay
from media import encode_reference
from s3_fixture import ACCESS_KEY, SECRET_KEY, MotoServer, free_port

from recorder.archive import ArchiveSettings
from recorder.mux.workers import MuxWorkers


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("refs")
    return {codec: encode_reference(codec, folder, 3.0) for codec in ("vp8", "opus")}


@pytest.fixture
async def relay(moto_server: MotoServer) -> AsyncIterator[TcpRelay]:
    r = TcpRelay(free_port(), moto_server.port)
    await r.restore()
    yield r
    await r.cut()


@pytest.fixture
def workers() -> Iterator[MuxWorkers]:
    w = MuxWorkers(2)
    yield w
    w.shutdown()


SettingsFactory = Callable[..., ArchiveSettings]


@pytest.fixture
def archive_settings(receiver: Receiver) -> SettingsFactory:
    """Settings for an S3 endpoint and bucket with fast retries; keyword arguments override fields."""

    def make(endpoint: str, bucket: str, **overrides: Any) -> ArchiveSettings:
        raw: dict[str, Any] = {
            "storage": {
                "backend": "s3",
                "s3": {
                    "endpoint": endpoint,
                    "bucket": bucket,
                    "secure": False,
                    "access_key": ACCESS_KEY,
                    "secret_key": SECRET_KEY,
                    "http_retries": 0,
                    "connect_timeout": 1,
                    "read_timeout": 5,
                },
            },
            "spool": {"retry_initial": 0.1, "retry_max": 0.5, "poll_interval": 0.2, "concurrency": 4},
            "signing": {"key_file": "signing-key.pem", "key_env": "CALLVAULT_TEST_NO_SUCH_VAR"},
            "webhooks": {
                "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret, "timeout": 2}],
                "retry_initial": 0.05,
                "retry_max": 0.5,
                "poll_interval": 0.1,
                "presign_expiry_seconds": 600,
            },
            "health_interval": 0.5,
        }
        raw.update(overrides)
        return ArchiveSettings.model_validate(raw)

    return make
