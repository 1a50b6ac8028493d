"""The Helm chart exposes the HTTP server's limits (api.max_request_line, max_header_size, max_headers,
header_timeout, body_timeout, max_connections) as `config.api.*` values: rendered by a real helm into
callvault.toml, they reach the service's ApiSettings, alongside any other api.* setting given in
`config.extra.api`; values out of the service's bounds are refused by the chart's schema."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from recorder.api.settings import ApiSettings
from recorder.service.settings import ServiceSettings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _deploy_kit() -> Any:
    if "deploy_kit" not in sys.modules:  # as tests/deploy/conftest.py loads it
        spec = importlib.util.spec_from_file_location("deploy_kit", DEPLOY / "deploy_kit.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["deploy_kit"] = module
        spec.loader.exec_module(module)
    return sys.modules["deploy_kit"]


@pytest.fixture(scope="module")
def helm() -> str:
    binary, how = _deploy_kit().helm()
    if binary is None:
        pytest.skip(f"no helm binary: {how}")
    return str(binary)


def rendered_config(helm: str, *args: str) -> dict[str, Any]:
    kit = _deploy_kit()
    out = kit.run_helm(helm, "template", "rel", str(kit.CHART), "--kube-version", kit.KUBE_VERSION, *args)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    return tomllib.loads(kit.one(docs, "ConfigMap")["data"]["callvault.toml"])


def service(config: dict[str, Any]) -> ServiceSettings:
    return ServiceSettings.model_validate({**config, "janus": {**config["janus"], "events_token": "t"}})


def test_defaults_are_the_service_defaults(helm: str) -> None:
    api = service(rendered_config(helm)).api
    defaults = ApiSettings()
    for name in ("max_request_line", "max_header_size", "max_headers", "header_timeout", "body_timeout"):
        assert getattr(api, name) == getattr(defaults, name), name
    assert api.max_connections == defaults.max_connections


def test_limits_set_in_values_reach_the_service(helm: str) -> None:
    limits = {
        "maxRequestLine": 4096,
        "maxHeaderSize": 2048,
        "maxHeaders": 32,
        "headerTimeout": 75.5,
        "bodyTimeout": 20,
        "maxConnections": 200,
    }
    config = rendered_config(
        helm,
        "--set-json",
        f"config.api={json.dumps(limits)}",
        "--set-json",
        'config.extra={"api": {"metrics_require_key": false, "max_headers": 9}}',
    )
    api = service(config).api
    assert (api.max_request_line, api.max_header_size, api.max_headers) == (4096, 2048, 32)  # chart's win
    assert (api.header_timeout, api.body_timeout, api.max_connections) == (75.5, 20.0, 200)
    assert api.metrics_require_key is False  # other api.* settings pass through config.extra.api


@pytest.mark.parametrize(
    "bad",
    [
        "config.api.maxHeaders=4",
        "config.api.maxConnections=0",
        "config.api.maxRequestLine=100000",
        "config.api.headerTimeout=0",
    ],
)
def test_limits_outside_the_service_bounds_are_refused(helm: str, bad: str) -> None:
    kit = _deploy_kit()
    result = kit.run_helm(helm, "template", "rel", str(kit.CHART), "--set-json", bad, check=False)
    assert result.returncode != 0 and "config/api" in result.stderr, result.stderr
