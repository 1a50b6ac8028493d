"""Capture overhead on ingest (issue 18 item 6), side by side with capture off, two ways:

1. End to end: N concurrent audio+video calls (VP8 ~1 Mbit/s + Opus, bench/ingest.py's media and
   real-rate replay over loopback) into ONE `callvault record-rtp`, capture off and on alternating,
   `--rounds` times each. Per run: the recorder's CPU during the ingest (% of a core per call), its CPU
   per packet it received (robust to a loaded machine, where the kernel drops what the recorder cannot
   read in time), loss, frames, capture written per call. Then the medians and the overhead.
2. Hot path (`--hotpath-calls`): bench/hotpath.py's socket-less loop (TrackReceiver, pipeline, timer) with
   and without capture, the capture's file half (block building, write, SHA-256) run in the same thread
   every FLUSH_INTERVAL of media time (as the session hands it over), so that process CPU time counts
   all of it; interleaved runs, the minimum of each.

    .venv/bin/python bench/capture.py --streams 100 --seconds 15 --rounds 2 --hotpath-calls 20

Goal: under 25 % more CPU per call. Only 127.0.0.1 is targeted; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpath import NoSocket
from ingest import Capture, cpu_of, free_ports, make_media, replay, sdp

from recorder.assembly.pipeline import StreamPipeline
from recorder.capture.recorder import FLUSH_INTERVAL
from recorder.capture.writer import CaptureFile, PacketCapture
from recorder.ingest.track import TrackReceiver
from recorder.models import Codec, StreamSpec


@dataclass
class Run:
    capture: bool
    cpu_seconds: float
    lost: int
    frames: int
    capture_bytes: int
    received: int


def run(video: Capture, audio: Capture, n: int, seconds: float, work: Path, capture: bool) -> Run:
    out = work / ("on" if capture else "off")
    ports = free_ports(2 * n)
    targets = [(ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    (work / "cv.sdp").write_text(sdp([(k, p) for v, a in targets for k, p in (("video", v), ("audio", a))]))
    rec = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "record-rtp", "--sdp", str(work / "cv.sdp"), "--out", str(out),
         "--name", "r", "--duration", str(seconds + 4), *(["--capture"] if capture else [])],
        stdout=subprocess.DEVNULL, stderr=(work / "callvault.log").open("w"),
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "r").glob("*.json"))) < 2 * n and rec.poll() is None:
        time.sleep(0.1)
    if rec.poll() is not None:  # a port taken meanwhile by someone else on a shared machine: try again
        log = (work / "callvault.log").read_text().strip().splitlines()
        print(f"recorder exited at start ({log[-1] if log else 'no log'}); again", flush=True)
        shutil.rmtree(out, ignore_errors=True)
        return run(video, audio, n, seconds, work, capture)
    proc = psutil.Process(rec.pid)
    cpu0 = cpu_of([proc])
    sender = mp.Process(target=replay, args=(video, audio, targets, seconds, time.time() + 0.5))
    sender.start()
    sender.join()
    cpu = cpu_of([proc]) - cpu0  # the ingest only, not the final join
    rec.wait(timeout=600)
    frames = lost = received = 0
    for path in (out / "r").glob("*.json"):
        s = json.loads(path.read_text())
        frames += s["frames"]
        lost += s["packets_lost"]
        received += s["packets_received"]
    written = sum(p.stat().st_size for p in (out / "r").glob("*.capture/*.pcapng"))
    return Run(capture, cpu, lost, frames, written, received)


def hotpath(video: Capture, audio: Capture, calls: int, capture: bool, folder: Path) -> tuple[int, float]:
    """bench/hotpath.py's loop, with each track's capture on or off; returns (packets, CPU seconds)."""
    receivers: list[tuple[TrackReceiver, Capture, CaptureFile | None]] = []
    for i in range(calls):
        for codec, pt, media, clock in ((Codec.VP8, 96, video, 90000), (Codec.OPUS, 97, audio, 48000)):
            spec = StreamSpec(
                name=f"{i}-{codec.value}", codec=codec, payload_type=pt, clock_rate=clock, port=1
            )
            receiver = TrackReceiver(spec, StreamPipeline(spec, "webm"))
            receiver.rtp_socket = NoSocket()
            file = None
            if capture:
                receiver.capture = PacketCapture(spec, 4.0, ("127.0.0.1", 1), None)
                file = CaptureFile(folder, spec.name, receiver.capture.header)
            receivers.append((receiver, media, file))
    events = sorted(
        (
            (t, n, r, p)
            for n, (r, c, _) in enumerate(receivers)
            for p, t in zip(c.packets, c.times, strict=True)
        ),
        key=lambda e: (e[0], e[1]),
    )
    sender = ("127.0.0.1", 9)
    start, last_tick, last_flush, base = time.process_time(), 0.0, 0.0, time.time()
    for t, _, receiver, packet in events:
        receiver.datagram_received(packet, sender)
        if t - last_tick >= 0.05:
            last_tick = t
            for r, _, _ in receivers:
                r.pipeline.tick(base + t + 1)
                r.pipeline.take_output()
            if t - last_flush >= FLUSH_INTERVAL:  # as CaptureRecorder hands them over
                last_flush = t
                for r, _, file in receivers:
                    if file is not None and r.capture is not None:
                        file.write(r.capture.take())
    for r, _, file in receivers:
        if file is not None and r.capture is not None:
            file.write(r.capture.take())
            file.close()
    return len(events), time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=100, help="concurrent audio+video calls")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=2, help="runs with capture off and on, alternating")
    ap.add_argument("--hotpath-calls", type=int, default=0, help="calls in the hot-path comparison (0: skip)")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    video, audio = make_media(args.seconds)
    n, seconds = args.streams, args.seconds
    if args.hotpath_calls:
        costs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(3):
            for capture in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    packets, cpu = hotpath(video, audio, args.hotpath_calls, capture, Path(tmp))
                costs[capture].append(1e6 * cpu / packets)
        off_us, on_us = min(costs[False]), min(costs[True])
        print(f"hot path, {args.hotpath_calls} calls, {packets} packets: {off_us:.2f} µs/packet without capture,"
              f" {on_us:.2f} with (+{on_us - off_us:.2f} µs, {100 * (on_us / off_us - 1):+.0f} % of the hot path)")  # fmt: skip
    if not args.rounds:
        return 0
    print(
        f"{'capture':>7} {'CPU %/call':>10} {'µs/pkt recv':>11} {'lost pkts':>9} {'frames':>8} {'capture MB/call':>15}"
    )
    runs: list[Run] = []
    for _ in range(args.rounds):
        for capture in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                r = run(video, audio, n, seconds, Path(tmp), capture)
            runs.append(r)
            print(f"{'on' if capture else 'off':>7} {100 * r.cpu_seconds / seconds / n:10.3f} "
                  f"{1e6 * r.cpu_seconds / max(r.received, 1):11.2f} {r.lost:9d} {r.frames:8d} "
                  f"{r.capture_bytes / n / 1e6:15.2f}", flush=True)  # fmt: skip
    off = statistics.median(r.cpu_seconds for r in runs if not r.capture)
    on = statistics.median(r.cpu_seconds for r in runs if r.capture)
    print(f"median CPU %/call: off {100 * off / seconds / n:.3f}, on {100 * on / seconds / n:.3f}; "
          f"capture overhead {100 * (on / off - 1):+.1f} % (goal: under 25 %)")  # fmt: skip
    off_pkt = statistics.median(r.cpu_seconds / max(r.received, 1) for r in runs if not r.capture)
    on_pkt = statistics.median(r.cpu_seconds / max(r.received, 1) for r in runs if r.capture)
    print(f"median CPU per packet received: off {1e6 * off_pkt:.2f} µs, on {1e6 * on_pkt:.2f} µs; "
          f"capture overhead {100 * (on_pkt / off_pkt - 1):+.1f} %")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
