"""`callvault serve` nodes of a fleet on a PostgreSQL catalog, as subprocesses (tests/jobs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from service_kit import free_tcp_port

T = TypeVar("T")


HD_COMPOSITE = '[composite]\nenabled = true\nprofiles = ["hd"]\nfps = 15\nlayout = "side-by-side"\n'


def node(
    tmp_path: Path,
    name: str,
    url: str,
    roles: list[str],
    data_dir: Path,
    extra: str = "",
    composite: str = HD_COMPOSITE,
    api: str = "",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """`callvault serve` with these roles on the PostgreSQL catalog (its output in tmp_path/name.log);
    (process, HTTP port). `extra`: top-level settings and whole tables; `api`: more [api] lines."""
    port = free_tcp_port()
    config = tmp_path / f"{name}.toml"
    roles_toml = "[" + ", ".join(f'"{r}"' for r in roles) + "]"
    config.write_text(
        f'data_dir = "{data_dir}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\nroles = {roles_toml}\n'
        + extra
        + f'[api]\ncatalog_url = "{url}"\nmetrics_require_key = false\n'
        + api
        + "[jobs]\nheartbeat_seconds = 0.5\nstalled_seconds = 3\n"
        + composite
    )
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CALLVAULT_COMPOSITE__ENABLED": "true", **(env or {})},
    )
    return proc, port


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Until check() is true; TimeoutError(what) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
