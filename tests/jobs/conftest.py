"""Fixtures of the job-queue tests: a webhook receiver (a real HTTP server checking signatures)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from archive_kit import Receiver
from s3_fixture import free_port

from recorder.webhooks import generate_secret


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port(), generate_secret())
    await r.start()
    yield r
    await r.stop()
