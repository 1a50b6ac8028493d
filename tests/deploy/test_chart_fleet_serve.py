"""The fleet's pods as the chart renders them, started for real: for the recorder, the API and the worker,
`callvault serve --config` runs on the pod's rendered callvault.toml with the pod's CALLVAULT_* environment
(secret references replaced by what their Secrets would hold: a real PostgreSQL catalog from Debian's
package, an API key, an events token), on one PostgreSQL catalog. Each process must start and do only its
role's part. Only what a laptop is not is overridden: the data folders, the HTTP address and port, the RTP
range and Janus's address (nothing listens there: the recorder waits for it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_kit import one, render
from postgres_kit import PostgresServer
from serve_process import request
from service_kit import free_port_base, free_tcp_port

pytestmark = [pytest.mark.timeout(180)]

ADMIN_KEY = "a-fleet-admin-key-of-at-least-32-characters"
EVENTS_TOKEN = "an-events-token-from-the-janus-secret"
TRIAL = (
    "fleet.enabled=true",
    "fleet.recorders[0].name=sfu1",
    "fleet.recorders[0].janus.wsUrl=ws://janus:8188",
    "fleet.recorders[0].rtp.portMin=41000",
    "fleet.recorders[0].rtp.portMax=41099",
    "postgresql.enabled=true",
    f"apiKeys.adminKey={ADMIN_KEY}",
    f"secrets.janus.eventsToken={EVENTS_TOKEN}",
)
WORKLOADS = {
    "recorder": "rel-callvault-recorder-sfu1",
    "api": "rel-callvault-api",
    "worker": "rel-callvault-worker",
}


def _pod_env(workload: dict[str, Any], catalog_url: str) -> dict[str, str]:
    """The pod's environment as the kubelet would give it: literal values, and secret references as what
    the chart's Secrets hold."""
    secrets = {
        "CALLVAULT_API__CATALOG_URL": catalog_url,
        "CALLVAULT_API__ADMIN_KEY": ADMIN_KEY,
        "CALLVAULT_JANUS__EVENTS_TOKEN": EVENTS_TOKEN,
    }
    env = {}
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    for entry in container["env"]:
        name = entry["name"]
        if "value" in entry:
            env[name] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            if name in secrets:
                env[name] = secrets[name]
            else:
                assert entry["valueFrom"]["secretKeyRef"].get("optional"), f"{name}: a Secret the test lacks"
        elif "fieldRef" in entry["valueFrom"]:
            env[name] = "127.0.0.1"  # status.podIP
    return env


@pytest.fixture
def fleet(
    helm_bin: str, tmp_path: Path, postgres_server: PostgresServer
) -> Iterator[tuple[dict[str, int], list[subprocess.Popen[bytes]]]]:
    docs = render(helm_bin, sets=TRIAL)
    catalog_url = postgres_server.create_database()
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for role, name in WORKLOADS.items():
            workload = one(docs, "StatefulSet" if role == "recorder" else "Deployment", name)
            config_map = next(
                v["configMap"]["name"]
                for v in workload["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "config"
            )
            config = tmp_path / f"{role}.toml"
            config.write_text(one(docs, "ConfigMap", config_map)["data"]["callvault.toml"])
            ports[role] = free_tcp_port()
            local = {
                "CALLVAULT_DATA_DIR": str(
                    tmp_path / ("recorder-data" if role == "recorder" else "shared-data")
                ),
                "CALLVAULT_HTTP_HOST": "127.0.0.1",
                "CALLVAULT_HTTP_PORT": str(ports[role]),
            }
            if role == "recorder":
                base = free_port_base(100)
                local |= {
                    "CALLVAULT_RTP_PORT_MIN": str(base),
                    "CALLVAULT_RTP_PORT_MAX": str(base + 99),
                    "CALLVAULT_JANUS__WS_URL": f"ws://127.0.0.1:{free_tcp_port()}",
                }
            clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
            log = (tmp_path / f"{role}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**clean, **_pod_env(workload, catalog_url), **local},
                )
            )
        for (role, port), proc in zip(ports.items(), procs, strict=True):
            _wait(
                f"{role} answers /healthz",
                lambda p=port, pr=proc, log=tmp_path / f"{role}.log": _answers(p, pr, log),
                90,
            )
        yield ports, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _answers(port: int, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    try:
        return request(f"http://127.0.0.1:{port}/healthz")[0] == 200
    except OSError:
        return False


def _wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def test_each_rendered_pod_runs_its_role(
    fleet: tuple[dict[str, int], list[subprocess.Popen[bytes]]],
) -> None:
    ports, procs = fleet
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def url(role: str, path: str) -> str:
        return f"http://127.0.0.1:{ports[role]}{path}"

    # The API: the REST API and /metrics with the job backlog the worker autoscaler reads; no Janus intake.
    status, metrics = request(url("api", "/metrics"), headers=bearer)
    assert status == 200 and "callvault_jobs_composites_pending" in metrics
    assert request(url("api", "/v1/recordings"), headers=bearer)[0] == 200
    assert request(url("api", "/janus/events"), "POST", b"[]")[0] == 404
    # The recorder: Janus's event intake (which wants the token), no API.
    assert request(url("recorder", "/janus/events"), "POST", b"[]")[0] in (401, 403)
    assert request(url("recorder", f"/janus/events?token={EVENTS_TOKEN}"), "POST", b"[]")[0] < 300
    assert request(url("recorder", "/v1/recordings"), headers=bearer)[0] == 404
    # The worker: neither.
    assert request(url("worker", "/v1/recordings"), headers=bearer)[0] == 404
    assert request(url("worker", "/janus/events"), "POST", b"[]")[0] == 404
    # SIGTERM (a pod deleted, a rollout): each one stops cleanly.
    for proc in procs:
        proc.terminate()
    assert [proc.wait(60) for proc in procs] == [0, 0, 0]
