"""`callvault serve` as an operator runs it: configured by a TOML file and environment variables,
up with Janus down (and saying so on /readyz), events from a real Janus's sampleevh arriving, clean
exit on SIGTERM, and a clear error for a bad configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from janus_fixture import ROOM_SECRET, JanusServer, free_port, start_or_skip

CALLVAULT = [sys.executable, "-m", "recorder.cli"]


ADMIN_KEY_API = "test-admin-key-0123456789abcdefghijklmnop"


def get(url: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_KEY_API}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            get(url)
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise TimeoutError(url)


def start_serve(tmp_path: Path, config: str, **env: str) -> subprocess.Popen[str]:
    path = tmp_path / "callvault.toml"
    path.write_text(config)
    return subprocess.Popen(
        [*CALLVAULT, "serve", "--config", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out


def test_starts_with_janus_down_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = start_serve(
        tmp_path,
        f'data_dir = "{tmp_path / "data"}"\nhttp_host = "127.0.0.1"\n[janus]\nws_url = "ws://127.0.0.1:{free_port()}"\n'
        'events_token = "t"\n',
        CALLVAULT_HTTP_PORT=str(port),  # the environment overrides the file
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["problems"]["janus"].startswith("not connected to Janus")
        deadline = time.monotonic() + 10
        while "Errno 111" not in body["problems"]["janus"] and time.monotonic() < deadline:
            time.sleep(0.05)  # until the first attempt failed (and was logged)
            body = get(f"http://127.0.0.1:{port}/readyz")[1]
        assert "Errno 111" in body["problems"]["janus"], body  # why (connection refused), not just that
    finally:
        code, out = stop(proc)
    assert code == 0, out
    assert "cannot connect to" in out
    # Each failed attempt is said once (the transport's warning), not again by the bridge.
    assert "no connection to Janus" not in out


def test_bad_configuration_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("http_port = 70000\n[janus]\nrecord_rooms = 5\n")
    result = subprocess.run(
        [*CALLVAULT, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("callvault: error: invalid configuration") and "http_port" in line


def test_settings_refuse_dropping_segments_the_archive_must_store(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[recorder]\nkeep_segments = false\n[archive]\ndelete_local_after_upload = true\n")
    result = subprocess.run(
        [*CALLVAULT, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "recorder.keep_segments = false cannot be used with the archive" in line


@pytest.fixture
def janus_with_events(tmp_path: Path) -> Iterator[tuple[JanusServer, int]]:
    http_port = free_port()
    server = JanusServer(
        tmp_path / "janus", sampleevh_url=f"http://127.0.0.1:{http_port}/janus/events?token=evtoken"
    )
    start_or_skip(server)
    yield server, http_port
    server.stop()


def test_ready_with_janus_and_receiving_its_events(
    tmp_path: Path, janus_with_events: tuple[JanusServer, int]
) -> None:
    janus, port = janus_with_events
    config = f"""
data_dir = "{tmp_path / "data"}"
http_host = "127.0.0.1"
http_port = {port}
rtp_port_min = 47000
rtp_port_max = 47999
[janus]
ws_url = "{janus.ws_url}"
admin_key = "{janus.admin_key}"
room_secret = "{ROOM_SECRET}"
events_token = "evtoken"
[api]
admin_key = "{ADMIN_KEY_API}"
[archive.storage]
backend = "local"
"""
    proc = start_serve(tmp_path, config)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        deadline = time.monotonic() + 15
        while get(f"http://127.0.0.1:{port}/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, {"ready": True, "problems": {}})
        # Our own client's session and handle produce events that sampleevh posts back to us.
        while time.monotonic() < deadline:
            status = get(f"http://127.0.0.1:{port}/v1/status")[1]
            if status["janus_events"]["received"] > 0:
                break
            time.sleep(0.1)
        assert status["janus_events"]["received"] > 0 and status["janus_events"]["unauthorized"] == 0
    finally:
        code, out = stop(proc)
    assert code == 0, out
