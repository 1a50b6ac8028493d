"""What the mediasoup tests run: the worker built once (integrations/mediasoup/scripts/build-worker.sh),
the package's node_modules, `callvault serve` with the ingest API (a subprocess: it is killed in a test),
the Node harness (a real mediasoup worker recording its Router with the package), and ffmpeg publishers
sending reference files' frames unchanged to the Producers' PlainTransports."""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media import VIDEO_SRC, read_packets, slice_nals

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "integrations" / "mediasoup"
BUILD_SCRIPT = PACKAGE / "scripts" / "build-worker.sh"
HARNESS = Path(__file__).with_name("harness.mjs")
VERSION = "3.12.16"
API_KEY = "mediasoup-test-admin-key-0123456789abcdef"
PT = {"vp8": 101, "h264": 102, "opus": 100}

# H.264 with SPS/PPS before every IDR (repeat-headers): a Consumer starts at a keyframe, mid-stream.
ENCODINGS = {
    "vp8": (VIDEO_SRC, ["-c:v", "libvpx", "-b:v", "400k", "-g", "15", "-deadline", "realtime"], "webm"),
    "h264": (VIDEO_SRC, ["-c:v", "libx264", "-bf", "0", "-g", "15", "-preset", "veryfast",
                         "-profile:v", "baseline", "-x264-params", "repeat-headers=1",
                         "-bsf:v", "h264_mp4toannexb"], "h264"),
    "opus": (["-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=48000:amplitude=0.2:seed=7"],
             ["-c:a", "libopus", "-b:a", "48k", "-ac", "2"], "webm"),
}  # fmt: skip


def worker_binary() -> Path:
    env = os.environ.get("MEDIASOUP_WORKER_BIN")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "callvault" / f"mediasoup-worker-{VERSION}" / "mediasoup-worker"


def prepare() -> tuple[Path | None, str]:
    """(worker binary, "") when everything the tests need is there or could be made; else (None, why)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node and npm are not installed"
    worker = worker_binary()
    if not worker.exists():
        result = subprocess.run(
            [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False
        )
        if result.returncode != 0 or not worker.exists():
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            return None, f"the mediasoup worker is not built and cannot be built here: {' | '.join(tail)}"
    if not (PACKAGE / "node_modules" / "mediasoup" / "package.json").exists():
        result = subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "MEDIASOUP_WORKER_BIN": str(worker)},
            check=False,
        )
        if result.returncode != 0:
            return None, f"npm ci in integrations/mediasoup failed: {result.stderr.strip()[-300:]}"
    return worker, ""


def encode(codec: str, folder: Path, seconds: float) -> Path:
    src, enc, ext = ENCODINGS[codec]
    out = folder / f"ref-{codec}.{ext}"
    if not out.exists():
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *src, "-t", str(seconds), *enc, str(out)],
            check=True,
            timeout=120,
        )
    return out


def send(reference: Path, port: int, rtcp_port: int, pt: int, ssrc: int) -> subprocess.Popen[bytes]:
    """ffmpeg sending the file's frames unchanged, in real time, to a Producer's PlainTransport."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re"]
    if reference.suffix == ".h264":
        args += ["-framerate", "30"]
    args += ["-i", str(reference), "-map", "0", "-c", "copy", "-strict", "experimental",
             "-payload_type", str(pt), "-ssrc", str(ssrc),
             "-f", "rtp", f"rtp://127.0.0.1:{port}?rtcpport={rtcp_port}&pkt_size=1200"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CallVault:
    """`callvault serve` with the ingest API (no Janus), the local store and a short lease."""

    folder: Path
    port: int = field(default_factory=free_port)
    rtp_low: int = field(default_factory=lambda: random.randrange(26000, 32400, 2))
    """Below the kernel's ephemeral ports (32768 up) and above 20000-21200, where bench/ingest.py binds
    its ports one after another while it runs (a test's whole range was once taken by it)."""
    proc: subprocess.Popen[bytes] | None = None
    lease: float = 2.0
    webhook_url: str | None = None
    """Where the archive delivers its webhooks (a `WebhookReceiver`), if anywhere."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def config(self) -> str:
        return f"""
data_dir = "{self.data}"
http_host = "127.0.0.1"
http_port = {self.port}
rtp_bind = "127.0.0.1"
rtp_port_min = {self.rtp_low}
rtp_port_max = {self.rtp_low + 199}
[janus]
enabled = false
[api]
admin_key = "{API_KEY}"
[ingest]
lease_seconds = {self.lease}
empty_room_grace = 1
restart_grace = 30
[composite]
enabled = false
[archive]
delete_local_after_upload = false
[archive.storage]
backend = "local"
""" + (
            f"""[[archive.webhooks.endpoints]]
id = "test"
url = "{self.webhook_url}"
secret = "{WEBHOOK_SECRET}"
"""
            if self.webhook_url
            else ""
        )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "callvault.toml").write_text(self.config())
        log = (self.folder / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--config", str(self.folder / "callvault.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callvault serve exited: {self.log()[-2000:]}")
            try:
                self.get("/healthz")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise TimeoutError("callvault serve did not start")

    def log(self) -> str:
        return (self.folder / "serve.log").read_text(errors="replace")

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(req, timeout=5) as response:
            return json.loads(response.read())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def finished(self, room: str, within: float = 60) -> str:
        """The id of the room's recording once the service finished it (and its archive stored it)."""
        found = until(
            lambda: next((f for f in self.get("/v1/status")["finished"] if f["room"] == room), None), within
        )
        rid = str(found["recording_id"])
        until(lambda: any(self.data.rglob(f"recordings-store/**/{rid}/manifest.json")) or None, within)
        return rid

    def summaries(self, rid: str) -> dict[str, dict[str, Any]]:
        folder = self.data / "recordings" / rid
        return {
            p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.stem != "manifest"
        }


PROBATION_PT = 127
"""mediasoup's bandwidth probation packets (SSRC 1234, payload type 127)."""


class LossyRelay:
    """The leg from mediasoup to CallVault with loss: UDP sockets on `host` (127.0.0.2) at every port of
    CallVault's RTP range forward each datagram to the same port on 127.0.0.1 and CallVault's answers
    (RTCP: PLIs, NACKs) back to whoever sent there; while `dropping`, every `every`-th media packet of
    each port (the payload type its first RTP packet had; RTX packets and mediasoup's bandwidth probes
    pass) is dropped and counted."""

    def __init__(self, low: int, count: int, every: int, host: str = "127.0.0.2") -> None:
        import selectors
        import socket

        self.host, self.every = host, every
        self.dropping = True
        self.dropped = 0
        self.forwarded = 0
        self._selector = selectors.DefaultSelector()
        self._sockets: list[socket.socket] = []
        self._peer: dict[int, tuple[str, int]] = {}
        self._media_pt: dict[int, int] = {}
        self._seen: dict[int, int] = {}
        for port in range(low, low + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:  # taken (by another process): CallVault cannot allocate it either
                sock.close()
                continue
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, port)
            self._sockets.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(0.1):
                sock, port = key.fileobj, key.data
                try:
                    data, addr = sock.recvfrom(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if addr == ("127.0.0.1", port):  # CallVault answering (RTCP)
                    if port in self._peer:
                        sock.sendto(data, self._peer[port])  # type: ignore[union-attr]
                    continue
                self._peer[port] = addr
                rtp = len(data) >= 12 and not 192 <= data[1] <= 223  # RTP, not RTCP
                if rtp and (pt := data[1] & 0x7F) != PROBATION_PT:
                    media = self._media_pt.setdefault(port, pt)
                    if pt == media:
                        n = self._seen[port] = self._seen.get(port, 0) + 1
                        if self.dropping and n > 30 and n % self.every == 0:
                            self.dropped += 1
                            continue
                self.forwarded += 1
                sock.sendto(data, ("127.0.0.1", port))  # type: ignore[union-attr]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._sockets:
            sock.close()
        self._selector.close()


WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class WebhookReceiver:
    """An HTTP endpoint on loopback (port from the OS) keeping every webhook body it receives."""

    def __init__(self) -> None:
        import http.server

        events = self.events = []  # type: list[dict[str, Any]]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                events.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind or e.get("data", {}).get("kind") == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def until(check: Callable[[], Any], within: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        time.sleep(step)


class Harness:
    """The Node mediasoup application (tests/mediasoup/harness.mjs) and its JSON-lines conversation."""

    def __init__(self, worker: Path, url: str, room: str, log: Path, rtp_host: str | None = None) -> None:
        self.proc = subprocess.Popen(
            ["node", str(HARNESS), url, API_KEY, room, *([rtp_host] if rtp_host else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
            env={**os.environ, "MEDIASOUP_WORKER_BIN": str(worker)},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._seq = 0
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait(lambda m: m.get("event") == "ready", 30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except json.JSONDecodeError:
                continue

    def wait(self, match: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
        for event in self.events:
            if match(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"harness: nothing matched within {within} s; seen {self.events[-5:]}")
            try:
                message = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if match(message):
                return message
            self.events.append(message)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self._seq += 1
        seq = self._seq
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "seq": seq, **args}) + "\n")
        self.proc.stdin.flush()
        reply = self.wait(lambda m: m.get("seq") == seq, 30)
        assert reply["ok"], reply
        return reply

    def streamstart(self, participant: str, within: float = 30) -> dict[str, Any]:
        return self.wait(
            lambda m: m.get("event") == "streamstart" and m["participantId"] == participant, within
        )

    def kill(self) -> None:
        """SIGKILL the Node process; its worker (a child that watches its pipes) goes with it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        worker_pid = self.ready.get("workerPid")
        if worker_pid:
            until(lambda: not Path(f"/proc/{worker_pid}").exists() or _zombie(worker_pid), 10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def frames(path: Path, codec: str) -> list[bytes]:
    data = read_packets(path).data
    return [b"".join(slice_nals(f)) for f in data] if codec == "h264" else data


def runs_in(sent: list[bytes], got: list[bytes]) -> list[tuple[int, int]]:
    """The recorded frames as runs of consecutive reference frames: [(start index, length)], in order.
    AssertionError when a recorded frame is not the next one of a run, nor found later in the reference
    (a frame changed, duplicated or out of order)."""
    runs: list[tuple[int, int]] = []
    j = 0
    for i, frame in enumerate(got):
        if runs and j < len(sent) and sent[j] == frame:
            start, n = runs[-1]
            runs[-1] = (start, n + 1)
            j += 1
            continue
        try:
            k = sent.index(frame, j)
        except ValueError:
            raise AssertionError(f"recorded frame {i} ({len(frame)} bytes) is not in what was sent") from None
        runs.append((k, 1))
        j = k + 1
    return runs
