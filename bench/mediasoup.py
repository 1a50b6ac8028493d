"""mediasoup benchmark: N concurrent participants (VP8 ~1 Mbit/s + Opus each) published to a real mediasoup
worker and recorded through the package (integrations/mediasoup) by ONE `callvault serve`, then the same N
participants recorded the usual way, one ffmpeg per participant from an SDP (`-c copy`), side by side.

    .venv/bin/python bench/mediasoup.py --participants 50 --seconds 20

Prints CPU per participant of CallVault, of the mediasoup worker and of the Node process running the
package (its PlainTransports and Consumers are the worker's work), and of the ffmpeg recipe; frames kept and
packets lost. The publishers are captured ffmpeg RTP replayed at real rate (bench/ingest.py) to the
Producers' PlainTransports; the ffmpeg recipe gets the same packets directly (mediasoup's forwarding cost
is the worker's, the same whichever recorder receives). Loopback only. Needs the worker
(integrations/mediasoup/scripts/build-worker.sh) and the package's node_modules (`make mediasoup-worker`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from ingest import Capture, cpu_of, make_media, replay, run_callvault, run_ffmpeg, sample

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "mediasoup" / "harness.mjs"
KEY = "bench-mediasoup-admin-key-0123456789abcdef"
VERSION = "3.12.16"


def worker_binary() -> Path:
    if os.environ.get("MEDIASOUP_WORKER_BIN"):
        return Path(os.environ["MEDIASOUP_WORKER_BIN"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "callvault" / f"mediasoup-worker-{VERSION}" / "mediasoup-worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    def __init__(self, work: Path, n: int) -> None:
        self.port = free_port()
        work.mkdir(parents=True, exist_ok=True)
        low = random.randrange(20000, 40000, 2)
        data = work / "data"
        (work / "cv.toml").write_text(
            f'data_dir = "{data}"\nhttp_host = "127.0.0.1"\nhttp_port = {self.port}\nrtp_bind = "127.0.0.1"\n'
            f"rtp_port_min = {low}\nrtp_port_max = {low + 4 * n + 40}\n[janus]\nenabled = false\n"
            f'[api]\nadmin_key = "{KEY}"\n[composite]\nenabled = false\n'
        )
        self.data = data
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--config", str(work / "cv.toml")],
            stdout=(work / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("callvault serve did not start") from None
                time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


class Node:
    """The test harness (tests/mediasoup/harness.mjs): a worker, a Router recorded with the package."""

    def __init__(self, url: str, room: str, worker: Path, log: Path) -> None:
        self.proc = subprocess.Popen(
            ["node", str(HARNESS), url, KEY, room],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env={**os.environ, "MEDIASOUP_WORKER_BIN": str(worker)},
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait(lambda m: m.get("event") == "ready")
        self.started = 0
        self.seq = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def wait(self, match: Any, within: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            message = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("event") == "streamstart":
                self.started += 1
            if match(message):
                return message

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.seq += 1
        seq = self.seq
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "seq": seq, **args}) + "\n")
        self.proc.stdin.flush()
        reply = self.wait(lambda m: m.get("seq") == seq)
        if not reply["ok"]:
            raise RuntimeError(reply)
        return reply


class Profiler:
    """py-spy sampling one process (all its threads, without pausing it: --nonblocking) into folded
    stacks, for `--profile`."""

    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--format", "raw",
             "--rate", "200", "--nonblocking", "--threads", "--duration", str(int(seconds)), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait(self) -> None:
        self.proc.wait(timeout=120)


def run_mediasoup(
    video: Capture, audio: Capture, n: int, seconds: float, work: Path, profile: Path | None = None
) -> dict[str, Any]:
    serve = Serve(work, n)
    node = Node(serve.url, "bench", worker_binary(), work / "node.log")
    try:
        targets = []
        for i in range(n):
            v = node.call(
                "produce", participant=f"p{i}", display=f"P{i}", codec="vp8", pt=96, ssrc=0x10000000 + i
            )
            a = node.call(
                "produce", participant=f"p{i}", display=f"P{i}", codec="opus", pt=97, ssrc=0x20000000 + i
            )
            targets.append((v["port"], a["port"]))
        deadline = time.monotonic() + 120
        while node.started < 2 * n and time.monotonic() < deadline:
            node.wait(lambda m: m.get("event") == "streamstart", within=120)
        procs = {
            "callvault": [psutil.Process(serve.proc.pid)],
            "mediasoup worker": [psutil.Process(node.ready["workerPid"])],
            "node (package)": [psutil.Process(node.proc.pid)],
        }
        before = {k: cpu_of(p) for k, p in procs.items()}
        ready = time.time() + 0.5
        sender = mp.Process(target=replay, args=(video, audio, targets, seconds, ready))
        sender.start()
        profiler = Profiler(serve.proc.pid, profile, seconds) if profile else None
        peak = [0]
        while sender.is_alive():
            sample(procs["callvault"], peak)
            time.sleep(0.5)
        cpu = {k: cpu_of(p) - before[k] for k, p in procs.items()}
        if profiler is not None:
            profiler.wait()
        upstream = node.call("stats")
        node.call("closeRouter")
        deadline = time.monotonic() + 300
        while not serve.get("/v1/status")["finished"] and time.monotonic() < deadline:
            time.sleep(0.2)
        rid = serve.get("/v1/status")["finished"][0]["recording_id"]
        frames = lost = 0
        for path in (serve.data / "recordings" / rid).glob("*.json"):
            summary = json.loads(path.read_text())
            frames += summary.get("frames", 0)
            lost += summary.get("packets_lost", 0)
        expected = n * (
            sum(1 for p, t in zip(video.packets, video.times, strict=False) if t < seconds and p[1] & 0x80)
            + sum(1 for t in audio.times if t < seconds)
        )
        return {
            "cpu_seconds": cpu,
            "peak_rss": peak[0],
            "frames": frames,
            "expected": expected,
            "lost": lost,
            "worker_received": upstream["packets"],
            "worker_lost": upstream["lost"],
        }
    finally:
        node.proc.kill()
        serve.stop()


def run_record_rtp(
    video: Capture, audio: Capture, n: int, seconds: float, work: Path, profile: Path | None
) -> Any:
    """bench/ingest.py's `record-rtp` run (the same packets straight to it), under py-spy if asked."""
    if profile is None:
        return run_callvault(video, audio, n, seconds, work)
    import ingest

    original = ingest.start_recorder

    def profiled(*args: Any) -> Any:
        rec, targets = original(*args)
        Profiler(rec.pid, profile / "record-rtp.txt", seconds)
        return rec, targets

    ingest.start_recorder = profiled
    try:
        return run_callvault(video, audio, n, seconds, work)
    finally:
        ingest.start_recorder = original


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--participants", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--skip-ffmpeg", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument(
        "--record-rtp", action="store_true",
        help="also `callvault record-rtp` (one process, no service) fed the same packets directly",
    )  # fmt: skip
    ap.add_argument(
        "--profile", type=Path, default=None,
        help="folder: py-spy folded stacks of `serve` (and record-rtp) during the replay (CPU figures then count py-spy's sampling)",
    )  # fmt: skip
    args = ap.parse_args()
    if not worker_binary().exists():
        print("no mediasoup worker: run integrations/mediasoup/scripts/build-worker.sh", file=sys.stderr)
        return 2
    n, seconds = args.participants, args.seconds
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    video, audio = make_media(seconds)
    print(
        f"{n} participants x (VP8 {len(video.packets) / seconds:.0f} pkt/s + Opus {len(audio.packets) / seconds:.0f}"
        f" pkt/s) for {seconds:.0f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        ms = run_mediasoup(
            video, audio, n, seconds, Path(tmp) / "ms", args.profile / "serve.txt" if args.profile else None
        )
        rr = None
        if args.record_rtp:
            (Path(tmp) / "rr").mkdir()
            rr = run_record_rtp(video, audio, n, seconds, Path(tmp) / "rr", args.profile)
        ff = None if args.skip_ffmpeg else run_ffmpeg(video, audio, n, seconds, Path(tmp))
    print(f"{'process':34} {'CPU %/participant':>17} {'CPU s total':>11}")
    for name, cpu in ms["cpu_seconds"].items():
        print(f"{name:34} {100 * cpu / seconds / n:17.3f} {cpu:11.2f}")
    print(f"callvault frames kept {ms['frames']}/{ms['expected']}, packets lost {ms['lost']}")
    print(
        f"mediasoup worker: packets received from the publishers {ms['worker_received']}, lost {ms['worker_lost']}"
    )
    figures: dict[str, Any] = {"participants": n, "seconds": seconds, "mediasoup": ms}
    if rr is not None:
        print(
            f"{'record-rtp (1 process, direct)':34} {100 * rr.cpu_seconds / seconds / n:17.3f} {rr.cpu_seconds:11.2f}"
        )
        print(f"record-rtp frames kept {rr.frames}/{rr.expected_frames}, packets lost {rr.lost_packets}")
        figures["record_rtp"] = {"cpu_seconds": rr.cpu_seconds, "frames": rr.frames, "lost": rr.lost_packets}
    if ff is not None:
        print(
            f"{'ffmpeg -c copy (1 per participant)':34} {100 * ff.cpu_seconds / seconds / n:17.3f} {ff.cpu_seconds:11.2f}"
        )
        print(f"ffmpeg frames kept {ff.frames}/{ff.expected_frames}")
        print(
            f"ratio ffmpeg/callvault CPU: {ff.cpu_seconds / max(ms['cpu_seconds']['callvault'], 1e-9):.2f}x"
        )
        figures["ffmpeg"] = {"cpu_seconds": ff.cpu_seconds, "peak_rss": ff.peak_rss, "frames": ff.frames}
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
