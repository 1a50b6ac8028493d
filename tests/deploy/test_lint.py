"""yamllint on every YAML file of deploy/ and k8s/ (Helm templates excepted: they are Go templates)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deploy_kit import ROOT


def test_yamllint_deploy_and_k8s() -> None:
    pytest.importorskip("yamllint", reason="yamllint is not installed (dev dependency)")
    config = Path(__file__).with_name("yamllint.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "-c", str(config), "deploy", "k8s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
