"""Fixtures of the deployment tests (tests/deploy): helm, and the chart rendered for the values files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def _load(name: str) -> None:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_load("deploy_kit")

import deploy_kit  # noqa: E402


@pytest.fixture(scope="session")
def helm_bin() -> str:
    binary, how = deploy_kit.helm()
    if binary is None:
        pytest.skip(f"no helm binary: {how}")
    return binary
