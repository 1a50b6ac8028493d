"""Ingest benchmark: N concurrent audio+video calls (VP8 ~1 Mbit/s + Opus) replayed at real rate over
loopback to ONE CallVault recorder process, then the same N streams through ffmpeg (`-c copy`, one
process per stream, the usual recipe), side by side.

    .venv/bin/python bench/ingest.py --streams 100 --seconds 20
    .venv/bin/python bench/ingest.py --curve 1,10,100,300 --seconds 15 --runs 3   # cost as load grows

Prints packets per second, CPU and memory per stream, the CPU cost per packet in microseconds, and loss
for both, and the ratio. The replay is bounded in count and time and only targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
VIDEO_CLOCK, AUDIO_CLOCK = 90000, 48000


@dataclass
class Capture:
    packets: list[bytes]
    times: list[float]  # seconds from the first packet, from RTP timestamps


def capture_rtp(args: list[str], clock: int) -> Capture:
    """Run an ffmpeg RTP sender at full speed into a local socket and keep every packet."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2.0)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            *args,
            "-f",
            "rtp",
            f"rtp://127.0.0.1:{port}?pkt_size=1200",
        ]
    )
    packets = []
    try:
        while True:
            try:
                data, _ = sock.recvfrom(2048)
            except TimeoutError:
                if proc.poll() is not None:
                    break
                continue
            if len(data) > 1 and 192 <= data[1] <= 223:
                continue  # RTCP
            packets.append(data)
    finally:
        proc.wait()
        sock.close()
    ts0 = int.from_bytes(packets[0][4:8], "big")
    times = [((int.from_bytes(p[4:8], "big") - ts0) & 0xFFFFFFFF) / clock for p in packets]
    return Capture(packets, times)


def make_media(seconds: float) -> tuple[Capture, Capture]:
    video = capture_rtp(
        ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", str(seconds), "-c:v", "libvpx",
         "-b:v", "1M", "-minrate", "1M", "-maxrate", "1M", "-g", "60", "-deadline", "realtime", "-cpu-used", "8",
         "-payload_type", "96"],
        VIDEO_CLOCK,
    )  # fmt: skip
    audio = capture_rtp(
        ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:a", "libopus",
         "-b:a", "48k", "-payload_type", "97"],
        AUDIO_CLOCK,
    )  # fmt: skip
    return video, audio


def free_ports(count: int) -> list[int]:
    """`count` even ports, each with its successor free (RTP + RTCP)."""
    ports: list[int] = []
    port = 20000
    while len(ports) < count and port < 60000:
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            ports.append(port)
        except OSError:
            pass
        port += 2
    return ports


def replay(
    video: Capture, audio: Capture, targets: list[tuple[int, int]], seconds: float, ready: float
) -> None:
    """Send every stream at real rate (bounded by `seconds`), each call offset a little in time."""
    events: list[tuple[float, int, bytes]] = []
    for i, (vport, aport) in enumerate(targets):
        offset = (i * 0.0137) % 0.033
        ssrc_v = (0x10000000 + i).to_bytes(4, "big")
        ssrc_a = (0x20000000 + i).to_bytes(4, "big")
        events += [
            (t + offset, vport, p[:8] + ssrc_v + p[12:])
            for p, t in zip(video.packets, video.times, strict=False)
            if t < seconds
        ]
        events += [
            (t + offset, aport, p[:8] + ssrc_a + p[12:])
            for p, t in zip(audio.packets, audio.times, strict=False)
            if t < seconds
        ]
    events.sort(key=lambda e: e[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    while time.time() < ready:
        time.sleep(0.01)
    start = time.monotonic()
    for t, port, data in events:
        delay = t - (time.monotonic() - start)
        if delay > 0.001:
            time.sleep(delay)
        sock.sendto(data, ("127.0.0.1", port))
        if time.monotonic() - start > seconds + 5:
            break


def sdp(codec_lines: list[tuple[str, int]]) -> str:
    lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=bench", "c=IN IP4 127.0.0.1", "t=0 0"]
    for kind, port in codec_lines:
        if kind == "video":
            lines += [f"m=video {port} RTP/AVP 96", "a=rtpmap:96 VP8/90000"]
        else:
            lines += [f"m=audio {port} RTP/AVP 97", "a=rtpmap:97 opus/48000/2"]
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    name: str
    cpu_seconds: float
    peak_rss: int
    frames: int
    expected_frames: int
    lost_packets: int


def sample(procs: list[psutil.Process], peak: list[int]) -> None:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    peak[0] = max(peak[0], total)


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def start_recorder(
    n: int, seconds: float, work: Path, out: Path
) -> tuple[subprocess.Popen[bytes], list[tuple[int, int]]]:
    """One `callvault record-rtp` for `n` audio+video calls into `out/r`, once every track listens; returns
    it and each call's (video port, audio port)."""
    ports = free_ports(2 * n)
    targets = [(ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    (work / "cv.sdp").write_text(sdp([(k, p) for v, a in targets for k, p in (("video", v), ("audio", a))]))
    rec = subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "record-rtp", "--sdp", str(work / "cv.sdp"), "--out", str(out),
         "--name", "r", "--duration", str(seconds + 4)],
        stdout=subprocess.DEVNULL, stderr=(work / "callvault.log").open("w"),
    )  # fmt: skip
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "r").glob("*.json"))) < 2 * n:
        time.sleep(0.1)
    return rec, targets


def run_callvault(video: Capture, audio: Capture, n: int, seconds: float, work: Path) -> Result:
    out = work / "cv-out"
    rec, targets = start_recorder(n, seconds, work, out)
    proc = psutil.Process(rec.pid)
    cpu0 = cpu_of([proc])
    ready = time.time() + 0.5
    sender = mp.Process(target=replay, args=(video, audio, targets, seconds, ready))
    sender.start()
    peak = [0]
    while sender.is_alive():
        sample([proc], peak)
        time.sleep(0.5)
    cpu = cpu_of([proc]) - cpu0  # the ingest only, not the final join
    rec.wait(timeout=600)
    errors = [line for line in (work / "callvault.log").read_text().splitlines() if "ERROR" in line]
    if errors:
        print(f"callvault logged {len(errors)} errors, first: {errors[0]}")
    frames = lost = 0
    for path in (out / "r").glob("*.json"):
        s = json.loads(path.read_text())
        frames += s["frames"]
        lost += s["packets_lost"]
    expected = n * (sum(1 for p, t in zip(video.packets, video.times, strict=False) if t < seconds and p[1] & 0x80)
                    + sum(1 for t in audio.times if t < seconds))  # fmt: skip
    return Result("callvault (1 process)", cpu, peak[0], frames, expected, lost)


def run_ffmpeg(video: Capture, audio: Capture, n: int, seconds: float, work: Path) -> Result:
    ports = free_ports(2 * n)
    targets = [(ports[2 * i], ports[2 * i + 1]) for i in range(n)]
    procs = []
    for i, (v, a) in enumerate(targets):
        (work / f"ff{i}.sdp").write_text(sdp([("video", v), ("audio", a)]))
        procs.append(
            subprocess.Popen(
                [
                    "ffmpeg",
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-protocol_whitelist",
                    "file,udp,rtp",
                    "-i",
                    str(work / f"ff{i}.sdp"),
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-t",
                    str(seconds + 2),
                    "-y",
                    str(work / f"ff{i}.webm"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    ps = [psutil.Process(p.pid) for p in procs]
    time.sleep(2.0)  # ffmpeg needs a moment to open its sockets
    cpu0 = cpu_of(ps)
    ready = time.time() + 0.5
    sender = mp.Process(target=replay, args=(video, audio, targets, seconds, ready))
    sender.start()
    peak = [0]
    while sender.is_alive():
        sample(ps, peak)
        time.sleep(0.5)
    cpu = cpu_of(ps) - cpu0
    time.sleep(1.0)
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)
    frames = 0
    for i in range(n):
        r = subprocess.run(
            ["ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0",
             str(work / f"ff{i}.webm")], capture_output=True, text=True, check=False,
        )  # fmt: skip
        frames += sum(int(x) for x in r.stdout.split() if x.strip().isdigit())
    expected = n * (sum(1 for p, t in zip(video.packets, video.times, strict=False) if t < seconds and p[1] & 0x80)
                    + sum(1 for t in audio.times if t < seconds))  # fmt: skip
    return Result(f"ffmpeg -c copy ({n} processes)", cpu, peak[0], frames, expected, -1)


def curve(
    video: Capture, audio: Capture, counts: list[int], seconds: float, skip_ffmpeg: bool, runs: int
) -> None:
    """CPU per call and per packet for each load, CallVault and ffmpeg side by side in each run (the
    machine's 1-minute load average printed before each), then min/median/max over the runs."""
    per_call = sum(1 for t in video.times if t < seconds) + sum(1 for t in audio.times if t < seconds)
    print(f"{'calls':>5} {'run':>3} {'load':>5} {'recorder':32} {'CPU %/call':>10} {'us/packet':>9} "
          f"{'frames kept':>15} {'lost':>6}")  # fmt: skip
    table: dict[int, list[tuple[float, float, float | None, str]]] = {}
    # Every run's files are kept until the end: on ext4 without a journal (this kind of machine), creating
    # a file scans past every inode deleted in the last 60-360 s, so deleting one run's thousands of
    # segment files would make the next run's recorder pay for the bench's own cleanup.
    scratch = tempfile.TemporaryDirectory()
    for n in counts:
        for run in range(1, runs + 1):
            load = os.getloadavg()[0]
            work = Path(scratch.name) / f"{n}-{run}"
            work.mkdir()
            results = [run_callvault(video, audio, n, seconds, work)]
            if not skip_ffmpeg:
                results.append(run_ffmpeg(video, audio, n, seconds, work))
            for r in results:
                us = 1e6 * r.cpu_seconds / (per_call * n)
                print(f"{n:>5} {run:>3} {load:5.2f} {r.name:32} {100 * r.cpu_seconds / seconds / n:10.3f} "
                      f"{us:9.2f} {r.frames:>7}/{r.expected_frames:<7} {r.lost_packets:>6}")  # fmt: skip
            cv = results[0]
            ratio = (
                cv.cpu_seconds / results[1].cpu_seconds
                if len(results) == 2 and results[1].cpu_seconds
                else None
            )
            kept = f"{cv.frames}/{cv.expected_frames} lost {cv.lost_packets}"
            if len(results) == 2:
                kept += f"; ffmpeg {results[1].frames}/{results[1].expected_frames}"
            table.setdefault(n, []).append((100 * cv.cpu_seconds / seconds / n, 1e6 * cv.cpu_seconds / (per_call * n),
                                            ratio, kept))  # fmt: skip
            if ratio is not None:
                print(f"{n:>5} {run:>3} ratio callvault/ffmpeg CPU: {ratio:.2f}")
    scratch.cleanup()
    print()
    print(
        "calls | CallVault CPU %/call min/median/max | µs/packet min/median/max | CallVault/ffmpeg min/median/max"
    )
    for n, rows in table.items():
        print(f"{n} | {_spread([r[0] for r in rows], 3)} | {_spread([r[1] for r in rows], 1)} | "
              f"{_spread([r[2] for r in rows if r[2] is not None], 2)} | {'; '.join(r[3] for r in rows)}")  # fmt: skip


def _spread(values: list[float], digits: int) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    return " / ".join(f"{v:.{digits}f}" for v in (values[0], values[len(values) // 2], values[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=50, help="concurrent audio+video calls")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--skip-ffmpeg", action="store_true")
    ap.add_argument("--curve", default=None, help="comma-separated call counts, e.g. 1,10,100,300")
    ap.add_argument("--runs", type=int, default=1, help="runs per call count (--curve): min/median/max")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        print("needs ffmpeg", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    from recorder import native

    print(f"recorder's {native.describe()}")  # the same tree and environment as the recorder process
    video, audio = make_media(args.seconds)
    if args.curve:
        curve(
            video, audio, [int(c) for c in args.curve.split(",")], args.seconds, args.skip_ffmpeg, args.runs
        )
        return 0
    pkts = sum(1 for t in video.times if t < args.seconds) + sum(1 for t in audio.times if t < args.seconds)
    print(f"{args.streams} calls x (VP8 {len(video.packets) / args.seconds:.0f} pkt/s + Opus "
          f"{len(audio.packets) / args.seconds:.0f} pkt/s) for {args.seconds:.0f} s on {os.cpu_count()} cores")  # fmt: skip
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results.append(run_callvault(video, audio, args.streams, args.seconds, work))
        if not args.skip_ffmpeg:
            results.append(run_ffmpeg(video, audio, args.streams, args.seconds, work))
    total_pkts = pkts * args.streams
    print(
        f"{'recorder':32} {'pkt/s':>8} {'CPU %/call':>10} {'core share':>10} {'MB/call':>8} {'frames kept':>12} {'lost pkts':>9}"
    )
    for r in results:
        cpu_pct = 100 * r.cpu_seconds / args.seconds
        print(f"{r.name:32} {total_pkts / args.seconds:8.0f} {cpu_pct / args.streams:10.3f} {cpu_pct / 100:10.2f} "
              f"{r.peak_rss / args.streams / 1e6:8.2f} {r.frames:>6}/{r.expected_frames:<6} {r.lost_packets:>9}")  # fmt: skip
    if len(results) == 2 and results[0].cpu_seconds > 0:
        cv, ff = results
        print(
            f"ratio ffmpeg/callvault: CPU {ff.cpu_seconds / cv.cpu_seconds:.2f}x, memory {ff.peak_rss / max(cv.peak_rss, 1):.2f}x"
        )
        calls_per_core = args.streams / (cv.cpu_seconds / args.seconds)
        print(f"callvault capacity at this load: {calls_per_core:.0f} audio+video calls per core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
