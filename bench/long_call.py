"""Long-call benchmark (issue 17.4): one two-party call of --minutes (default 120) replayed --speed times
faster than real time (default 20x) into one `callvault record-rtp`, with the recorder's memory sampled
as it goes; then the files are checked.

    .venv/bin/python bench/long_call.py --minutes 120 --speed 20

Media: 20 s of VP8 (~1 Mbit/s, a keyframe every 2 s) and Opus per participant, made once by ffmpeg and
looped with continuous RTP sequence numbers and timestamps, so the recorder sees one long, unbroken call.
Prints the recorder's RSS over time (min/max/last, and the growth between the first and last quarter),
its CPU, and what it wrote: frames and packets lost per track, the joined files' durations by ffprobe,
and the number of segments. Bounded: one replay of minutes*60/speed seconds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import AUDIO_CLOCK, VIDEO_CLOCK, Capture, free_ports, make_media, sdp  # noqa: E402

LOOP_SECONDS = 20.0


def looped(capture: Capture, clock: int, loops: int, ssrc: int) -> list[tuple[float, bytes]]:
    """The capture repeated `loops` times as one stream: (send time in media seconds, packet)."""
    out = []
    seq = 0
    for loop in range(loops):
        shift = round(loop * LOOP_SECONDS * clock)
        base_ts = int.from_bytes(capture.packets[0][4:8], "big")
        for packet, t in zip(capture.packets, capture.times, strict=False):
            if t >= LOOP_SECONDS:
                break
            ts = (int.from_bytes(packet[4:8], "big") - base_ts + shift) & 0xFFFFFFFF
            header = (
                packet[:2]
                + (seq & 0xFFFF).to_bytes(2, "big")
                + ts.to_bytes(4, "big")
                + ssrc.to_bytes(4, "big")
            )
            out.append((loop * LOOP_SECONDS + t, header + packet[12:]))
            seq += 1
    return out


def send(streams: list[tuple[int, list[tuple[float, bytes]]]], speed: float, ready: float) -> None:
    events = sorted((t / speed, port, data) for port, packets in streams for t, data in packets)
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


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return float(out.stdout.strip())
    except ValueError:
        return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=120.0, help="length of the call (media time)")
    ap.add_argument("--speed", type=float, default=20.0, help="replay speed, times real time")
    ap.add_argument("--segment-seconds", type=float, default=4.0)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    video, audio = make_media(LOOP_SECONDS + 1)
    loops = max(1, round(args.minutes * 60 / LOOP_SECONDS))
    wall = loops * LOOP_SECONDS / args.speed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ports = free_ports(4)
        lines = [("video", ports[0]), ("audio", ports[1]), ("video", ports[2]), ("audio", ports[3])]
        (work / "call.sdp").write_text(sdp(lines))
        streams = [
            (ports[0], looped(video, VIDEO_CLOCK, loops, 0x1001)),
            (ports[1], looped(audio, AUDIO_CLOCK, loops, 0x1002)),
            (ports[2], looped(video, VIDEO_CLOCK, loops, 0x2001)),
            (ports[3], looped(audio, AUDIO_CLOCK, loops, 0x2002)),
        ]
        rec = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "record-rtp", "--sdp", str(work / "call.sdp"), "--out",
             str(work / "out"), "--name", "long", "--segment-seconds", str(args.segment_seconds),
             "--duration", str(wall + 60)],
            stdout=subprocess.DEVNULL, stderr=(work / "callvault.log").open("w"),
        )  # fmt: skip
        proc = psutil.Process(rec.pid)
        deadline = time.time() + 60
        while time.time() < deadline and len(list((work / "out" / "long").glob("*.json"))) < 4:
            time.sleep(0.1)
        sent = {port: len(p) for port, p in streams}
        cpu0 = proc.cpu_times()
        sender = mp.Process(target=send, args=(streams, args.speed, time.time() + 0.5))
        sender.start()
        rss: list[tuple[float, int]] = []
        started = time.monotonic()
        while sender.is_alive() and time.monotonic() - started < wall + 120:
            rss.append((time.monotonic() - started, proc.memory_info().rss))
            time.sleep(2.0)
        sender.join(timeout=10)
        cpu1 = proc.cpu_times()
        rec.wait(timeout=wall + 600)
        out = work / "out" / "long"
        print(f"a {args.minutes:.0f}-minute two-party call replayed at {args.speed:.0f}x in {wall:.0f} s "
              f"({sum(sent.values())} packets)")  # fmt: skip
        q = max(1, len(rss) // 4)
        first = sum(r for _, r in rss[:q]) / q
        last = sum(r for _, r in rss[-q:]) / q
        print(f"recorder RSS: min {min(r for _, r in rss) / 1e6:.1f} MB, max {max(r for _, r in rss) / 1e6:.1f} MB, "
              f"first quarter {first / 1e6:.1f} MB, last quarter {last / 1e6:.1f} MB "
              f"({100 * (last - first) / first:+.1f} %)")  # fmt: skip
        print(f"recorder CPU during the replay: {cpu1.user + cpu1.system - cpu0.user - cpu0.system:.1f} s")
        for summary_path in sorted(out.glob("*.json")):
            s = json.loads(summary_path.read_text())
            joined = out / s["file"] if s.get("file") else None
            duration = ffprobe_duration(joined) if joined and joined.exists() else float("nan")
            counters = {
                k: s[k]
                for k in (
                    "packets_received",
                    "packets_late",
                    "packets_duplicate",
                    "packets_foreign",
                    "frames_dropped",
                    "frames_unwritten",
                )
                if s.get(k)
            }
            span = (s.get("media_seconds") or 0.0, s.get("arrival_seconds") or 0.0)
            print(f"  {s['name']:24} media {span[0]:.1f} s, arrival {span[1]:.1f} s, {counters}")
            gaps = s.get("gaps", [])
            gap_seconds = sum(g["end_time"] - g["start_time"] for g in gaps)
            print(f"  {s['name']:24} {s['state']:9} frames {s['frames']:>7} lost packets {s['packets_lost']:>5} "
                  f"segments {len(s['segments']):>5} joined file {duration:8.1f} s, gaps {len(gaps)} "
                  f"({gap_seconds:.1f} s of wall clock)")  # fmt: skip
        log_lines = (work / "callvault.log").read_text().splitlines()
        for level in ("ERROR", "WARNING"):
            found = [line for line in log_lines if f" {level} " in line]
            print(
                f"{level.lower()}s logged: {len(found)}" + "".join(f"\n  {line[:300]}" for line in found[:5])
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
