"""The mediasoup tests need a real mediasoup worker: built once into ~/.cache (the Makefile's `unit`
target builds it first; here it is built when missing), and the package's node_modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from mediasoup_kit import prepare


@pytest.fixture(scope="session")
def mediasoup_worker() -> Path:
    worker, why = prepare()
    if worker is None:
        pytest.skip(why)
    return worker
