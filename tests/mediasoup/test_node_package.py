"""The Node package's own tests (`npm test`: node --test against a real mediasoup worker), run with the
Python suite so `make test` covers them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from mediasoup_kit import PACKAGE

pytestmark = pytest.mark.slow


def test_node_package_tests_pass(mediasoup_worker: Path) -> None:
    result = subprocess.run(
        ["npm", "test", "--silent"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "MEDIASOUP_WORKER_BIN": str(mediasoup_worker)},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "# fail 0" in output and "# skipped 0" in output, output[-2000:]
