"""Fixtures of the composite tests: one real two-party call recorded over RTP (shared by the session;
tests that alter it work on a copy)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(1, str(Path(__file__).parent))  # composite_kit, beside this file

from composite_kit import ALICE, BOB, Call, encode_publisher, record_call

# alice: audio from the start, video 0.5 s later in her stream (her files start 0.5 s apart); bob joins
# 1.3 s after alice, with a portrait camera. Their beeps differ in pitch so the mix can be told apart.


@pytest.fixture(scope="session")
def call(tmp_path_factory: pytest.TempPathFactory) -> Call:
    work = tmp_path_factory.mktemp("call")
    refs = [(p, encode_publisher(work, p)) for p in (ALICE, BOB)]
    summaries = asyncio.run(record_call(work / "rec", refs))
    assert all(s.state == "complete" for s in summaries), summaries
    return Call(work / "rec", {s.name: s for s in summaries})


@pytest.fixture
def call_copy(call: Call, tmp_path: Path) -> Callable[[], Path]:
    return lambda: call.copy(tmp_path / "rec")
