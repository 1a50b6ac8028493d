"""`callvault serve` as a subprocess for tests that read everything it prints: start it from a TOML text,
send plain HTTP requests (any status, the body as text), stop it with SIGTERM and collect its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CALLVAULT = [sys.executable, "-m", "recorder.cli"]
REQUEST_TIMEOUT = 30.0
"""Seconds one request() may wait for its answer."""


def start(
    tmp_path: Path,
    config: str,
    *options: str,
    env: dict[str, str] | None = None,
    serve_options: tuple[str, ...] = (),
) -> subprocess.Popen[str]:
    """`callvault [options] serve --config tmp_path/callvault.toml [serve_options]`, stdout and stderr in
    one pipe."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "callvault.toml"
    path.write_text(config)
    return subprocess.Popen(
        [*CALLVAULT, *options, "serve", "--config", str(path), *serve_options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """(status, body text) of one request, whatever the status. Its answer may take REQUEST_TIMEOUT s (then a
    TimeoutError): a serve process on a loaded 2-core machine, or a fleet's API node waiting its
    command_timeout_seconds (10 s by default) for a recorder, can take longer than a few seconds."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    """Until `url` answers at all; RuntimeError with the output when the service exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"callvault serve exited with {proc.returncode}: {proc.communicate()[0]}")
        try:
            request(url)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then (exit status, everything it printed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return proc.returncode, out
