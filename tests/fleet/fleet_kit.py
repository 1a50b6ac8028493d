"""Recorder nodes of a fleet as `callvault serve` subprocesses on one PostgreSQL catalog (tests/fleet), calls
recorded through their ingest API with Debian's ffmpeg as the SFU's RTP sender."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from serve_process import request
from service_kit import free_port_base, free_tcp_port

T = TypeVar("T")
KEY = "fleet-test-admin-key-0123456789abcdefghij"
HEARTBEAT = 0.5
DEAD_AFTER = 6.0
SEEN = 2000
"""Characters of the last answer a timeout's message quotes (watch)."""


@dataclass
class Node:
    name: str
    config: Path
    data_dir: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Node:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "recorder.cli", "serve", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ),
            )
        return self

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        status, text = request(self.base + path, method, data, headers)
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def answers(self) -> bool:
        try:
            return request(f"{self.base}/v1/recorders", headers={"Authorization": f"Bearer {KEY}"})[0] == 200
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_answers(self, timeout: float) -> None:
        """Until the node answers; TimeoutError with the end of its log after `timeout` s."""
        try:
            wait_for(f"{self.name} answers", self.answers, timeout)
        except TimeoutError:
            tail = "\n".join(self.output().splitlines()[-20:])
            raise TimeoutError(f"{self.name} does not answer; the end of its log:\n{tail}") from None


def recorder_node(
    tmp_path: Path,
    name: str,
    url: str,
    node_name: str | None = None,
    extra: str = "",
    dead_after: float = DEAD_AFTER,
) -> Node:
    """A recorder + api node named `node_name` (default `name`) with its own data_dir and RTP range;
    `extra`: TOML tables appended (an [archive]); `dead_after`: seconds of silence before peers judge a
    node dead (short by default, for the tests that kill one; long where none is killed)."""
    port, rtp = free_tcp_port(), free_port_base(40)
    data_dir = tmp_path / name
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n'
        f'rtp_bind = "127.0.0.1"\nrtp_port_min = {rtp}\nrtp_port_max = {rtp + 39}\n'
        'roles = ["recorder", "api"]\n'
        "[janus]\nenabled = false\n"
        "[recorder]\nsegment_seconds = 0.5\n"
        "[ingest]\nlease_seconds = 120\nrestart_grace = 1\n"
        f'[api]\ncatalog_url = "{url}"\nadmin_key = "{KEY}"\nmetrics_require_key = false\n'
        "[composite]\nenabled = false\n"
        f'[fleet]\nnode_name = "{node_name or name}"\nheartbeat_seconds = {HEARTBEAT}\n'
        f"dead_after_seconds = {dead_after}\n" + extra
    )
    return Node(name, config, data_dir, port, tmp_path / f"{name}.log")


def api_node(
    tmp_path: Path, name: str, url: str, command_timeout: float = 10.0, dead_after: float = DEAD_AFTER
) -> Node:
    """An API-only node (no SFU, no recorder) of the fleet named `name`."""
    port = free_tcp_port()
    data_dir = tmp_path / name
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\nroles = ["api"]\n'
        "[janus]\nenabled = false\n"
        f'[api]\ncatalog_url = "{url}"\nadmin_key = "{KEY}"\nmetrics_require_key = false\n'
        "[composite]\nenabled = false\n"
        f'[fleet]\nnode_name = "{name}"\nheartbeat_seconds = {HEARTBEAT}\ndead_after_seconds = {dead_after}\n'
        f"command_timeout_seconds = {command_timeout}\n"
    )
    return Node(name, config, data_dir, port, tmp_path / f"{name}.log")


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Until check() is true; TimeoutError(what) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(what)


def watch(what: str, node: Node, path: str, test: Callable[[Any], T | None], timeout: float) -> T:
    """Until test(body of `node`'s GET `path`) is true (its value); TimeoutError(what) after `timeout` s,
    with the last answer seen (status and body, trimmed to SEEN characters) to read the failure by. A GET
    that gets no answer in time is one more look (its socket TimeoutError must not end the wait early
    with the previous answer quoted as if the deadline had passed)."""
    last: list[tuple[int | str, Any]] = []

    def check() -> T | None:
        try:
            status, body = node.call("GET", path)
        except TimeoutError as exc:  # one slow answer on a loaded machine: not yet (the deadline decides)
            last[:] = [("no answer", f"{exc} (serve_process.request's timeout)")]
            return None
        last[:] = [(status, body)]
        return test(body) if status == 200 else None

    try:
        return wait_for(what, check, timeout)
    except TimeoutError:
        seen = json.dumps(last[0][1]) if last else "nothing"
        seen = seen if len(seen) <= SEEN else seen[:SEEN] + f"... ({len(seen)} characters)"
        status = last[0][0] if last else "-"
        raise TimeoutError(f"{what} (after {timeout:.0f} s); last GET {path}: {status} {seen}") from None


class Hooks:
    """A webhook endpoint in a thread: keeps every event posted to it (JSON bodies)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def archive(self, secret: str) -> str:
        """An [archive] (local store) whose webhooks come here."""
        return (
            "[archive.spool]\npoll_interval = 0.1\n[archive.webhooks]\npoll_interval = 0.1\n"
            f'[[archive.webhooks.endpoints]]\nid = "crm"\nurl = "{self.url}"\nsecret = "{secret}"\n'
        )

    def of(self, kind: str, recording_id: str) -> dict[str, Any] | None:
        return next(
            (e for e in list(self.events) if e["type"] == kind and e["data"]["recording_id"] == recording_id),
            None,
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def opus_parameters(ssrc: int) -> dict[str, Any]:
    return {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": ssrc}],
    }


def start_call(
    node: Node, room: str, participant: str, reference: Path, ssrc: int
) -> tuple[str, subprocess.Popen[bytes]]:
    """Register one Opus stream through the node's ingest API and send it in real time with ffmpeg:
    (recording id, the sender)."""
    body = {"kind": "audio", "mid": "1", "rtp_parameters": opus_parameters(ssrc)}
    status, out = node.call("POST", f"/v1/ingest/rooms/{room}/participants/{participant}/streams", body)
    assert status == 201, out
    port = out["port"]
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(reference), "-map", "0:a",
            "-c", "copy", "-payload_type", "111", "-ssrc", str(ssrc), "-f", "rtp",
            f"rtp://127.0.0.1:{port}?rtcpport={port + 1}&pkt_size=1200"]  # fmt: skip
    return out["recording_id"], subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(procs: list[subprocess.Popen[bytes] | None]) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.terminate()
    for p in procs:
        if p is None:
            continue
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
