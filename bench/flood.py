"""Flood benchmark: N real audio+video calls replayed at real rate to ONE CallVault recorder while a
foreign sender on the same host floods every RTP and RTCP port with junk (RTP-looking packets with the
right payload types and random SSRCs, and random bytes). Issue 10: before each track locked to its sender
and connected its sockets, a 230,000 datagram/s flood made the real streams lose 78 % of their video.

    .venv/bin/python bench/flood.py --streams 100 --seconds 15 --flood-rate 150000

Prints the flood rate reached, the real packets lost and frames kept with and without the flood, side by
side, and CallVault's CPU. Bounded in count and time; only targets 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import Capture, cpu_of, make_media, replay, start_recorder


def flood(targets: list[int], rate: float, start: float, seconds: float, sent: mp.Value) -> None:  # type: ignore[type-arg]
    """Junk to every port at about `rate` datagrams/s from one socket, from `start` for `seconds`."""
    rng = random.Random(7)
    junk = []
    for i in range(512):
        if i % 2:
            header = bytes([0x80, 96 + rng.randrange(2)]) + rng.randbytes(10)
            junk.append(header + rng.randbytes(rng.randrange(20, 1100)))
        else:
            junk.append(rng.randbytes(rng.randrange(1, 200)))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while time.time() < start:
        time.sleep(0.005)
    began = time.monotonic()
    count = 0
    batch = 200
    while (elapsed := time.monotonic() - began) < seconds:
        ahead = count - rate * elapsed
        if ahead > 0:
            time.sleep(min(ahead / rate, 0.01))
            continue
        for _ in range(batch):
            port = targets[count % len(targets)]
            try:  # noqa: SIM105 (a with-block per datagram would slow the flood)
                sock.sendto(junk[count % 512], ("127.0.0.1", port))
            except OSError:
                pass  # ICMP port unreachable reported back on this socket: the kernel refused it
            count += 1
    sent.value = count


def run(
    video: Capture, audio: Capture, n: int, seconds: float, flood_rate: float, work: Path
) -> dict[str, float]:
    out = work / f"out-{int(flood_rate)}"
    rec, targets = start_recorder(n, seconds, work, out)
    proc = psutil.Process(rec.pid)
    cpu0 = cpu_of([proc])
    ready = time.time() + 0.5
    # Janus latches each RTCP path from its local_rtcp_port as soon as it forwards: so does the bench.
    sfu_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for v, a in targets:
        for port in (v + 1, a + 1):
            sfu_rtcp.sendto(b"\x80\x00\x00\x00" + bytes(8), ("127.0.0.1", port))
    sender = mp.Process(target=replay, args=(video, audio, targets, seconds, ready))
    sent = mp.Value("q", 0)
    all_ports = [p for pair in targets for port in pair for p in (port, port + 1)]
    flooder = mp.Process(target=flood, args=(all_ports, flood_rate, ready + 1.0, seconds - 2.0, sent))
    sender.start()
    if flood_rate > 0:
        flooder.start()
    sender.join()
    if flood_rate > 0:
        flooder.join()
    cpu = cpu_of([proc]) - cpu0
    rec.wait(timeout=600)
    sfu_rtcp.close()
    frames = lost = foreign = 0
    for path in (out / "r").glob("*.json"):
        s = json.loads(path.read_text())
        frames += s["frames"]
        lost += s["packets_lost"]
        foreign += s.get("packets_foreign", 0)
    expected_frames = n * (
        sum(1 for p, t in zip(video.packets, video.times, strict=False) if t < seconds and p[1] & 0x80)
        + sum(1 for t in audio.times if t < seconds)
    )
    expected_packets = n * (
        sum(1 for t in video.times if t < seconds) + sum(1 for t in audio.times if t < seconds)
    )
    return {
        "flood_rate": sent.value / max(seconds - 2.0, 1e-9) if flood_rate > 0 else 0.0,
        "cpu_pct": 100 * cpu / seconds,
        "frames": frames,
        "expected_frames": expected_frames,
        "lost": lost,
        "expected_packets": expected_packets,
        "foreign_counted": foreign,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=100, help="concurrent audio+video calls")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--flood-rate", type=float, default=150_000, help="junk datagrams per second")
    args = ap.parse_args()
    video, audio = make_media(args.seconds)
    print(f"{args.streams} calls for {args.seconds:.0f} s on {os.cpu_count()} cores; flood target "
          f"{args.flood_rate:.0f} datagrams/s from a foreign port of the same host")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (0.0, args.flood_rate):
            rows.append(run(video, audio, args.streams, args.seconds, rate, Path(tmp)))
    print(
        f"{'run':10} {'flood dgram/s':>13} {'CPU %':>7} {'frames kept':>15} {'real pkts lost':>15} {'loss %':>7}"
    )
    for name, r in zip(("no flood", "flood"), rows, strict=True):
        loss = 100 * r["lost"] / max(r["expected_packets"], 1)
        print(f"{name:10} {r['flood_rate']:13.0f} {r['cpu_pct']:7.1f} {r['frames']:>7}/{r['expected_frames']:<7} "
              f"{r['lost']:>15} {loss:7.3f}")  # fmt: skip
    quiet, flooded = rows
    print(f"frames kept under flood: {100 * flooded['frames'] / max(quiet['frames'], 1):.2f} % of the quiet run's; "
          f"packets refused after the sockets locked are dropped by the kernel (counted in the summary before: "
          f"{flooded['foreign_counted']})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
