"""Report benchmark: `callvault report` on a synthesized 1-hour two-party call with raw captures.

    .venv/bin/python bench/report.py [--minutes 60] [--video-kbps 500] [--runs 3] [--keep DIR]

The recording folder is synthesized once (not timed): per participant a VP8 video track (30 fps, 2
packets a frame at --video-kbps) and an Opus audio track (50 packets/s, 80-byte payloads), each with its
track summary (SSRC, picture-size layers, a few gaps, a 30 s pause, RTCP sender reports every 5 s) and
its capture as pcapng segments of 60 s (`<track>.capture/NNNNNN.pcapng`: SHB, raw-IP interface, one EPB
per packet with IPv4/UDP headers), 1 % seeded loss, 0.2 % duplicates, arrival jitter of 0-15 ms, and a
signed manifest over everything (so the integrity check hashes every byte, as it would for a real
call). Timed: the whole report (read the captures, analyze, verify the manifest, render HTML + PDF), per
run, with the split between reading/analysis, verification and rendering, and the process CPU time (less
sensitive to a loaded machine than wall time); prints min/median/max.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from postprocess.forensics import analysis, render
from postprocess.forensics.sync import NTP_UNIX_OFFSET
from recorder.manifest import build_manifest, write_signed_manifest
from recorder.models import Codec, Gap, LayerInterval, MediaKind, PauseInterval, TrackSummary
from recorder.summaries import write_summary

T0 = 1_800_000_000.0
SEGMENT = 60.0
_EPB = struct.Struct("<IIIIIII")
_IP = struct.Struct("!BBHHHBBH4s4sHHHH")
_RTP = struct.Struct("!BBHII")


def _block(kind: int, body: bytes) -> bytes:
    pad = -len(body) & 3
    total = 12 + len(body) + pad
    return struct.pack("<II", kind, total) + body + b"\0" * pad + struct.pack("<I", total)


HEADER = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + _block(
    1, struct.pack("<HHI", 101, 0, 0) + struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
)


def _epb(t: float, payload: bytes, port: int) -> bytes:
    udp_len = 8 + len(payload)
    ip = _IP.pack(
        0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1", 40000, port, udp_len, 0
    )
    packet = ip + payload
    ns = round(t * 1e9)
    body = _EPB.pack(0, ns >> 32, ns & 0xFFFFFFFF, len(packet), len(packet), 0, 0)[:20] + packet
    return _block(6, body)


def _ntp(t: float) -> int:
    return round((t + NTP_UNIX_OFFSET) * 2**32)


def synthesize(folder: Path, minutes: float, video_kbps: int, seed: int = 18) -> None:
    rng = random.Random(seed)
    seconds = minutes * 60
    summaries = []
    owners = {}
    for who, (start, port) in {"agent": (0.0, 50000), "customer": (2.0, 50010)}.items():
        for kind, codec, clock, pps, size, pt in (
            (MediaKind.VIDEO, Codec.VP8, 90000, 60, max(200, video_kbps * 1000 // 8 // 60), 96),
            (MediaKind.AUDIO, Codec.OPUS, 48000, 50, 80, 111),
        ):
            name = f"{who}-{kind.value}"
            owners[name] = who
            ssrc = rng.getrandbits(32)
            cap = folder / f"{name}.capture"
            cap.mkdir(parents=True)
            count = int((seconds - start) * pps)
            step = clock // pps if kind is MediaKind.AUDIO else clock // 30
            payload = bytes(size - 12)
            lost = 0
            out = None
            seg_end = -1.0
            index = 0
            for i in range(count):
                sent = T0 + start + i / pps
                if sent >= seg_end:
                    if out is not None:
                        out.close()
                    out = (cap / f"{index:06d}.pcapng").open("wb")
                    out.write(HEADER)
                    index += 1
                    seg_end = sent + SEGMENT
                roll = rng.random()
                if roll < 0.01:
                    lost += 1
                    continue
                ts = (i * step if kind is MediaKind.AUDIO else (i // 2) * step) & 0xFFFFFFFF
                marker = kind is MediaKind.AUDIO or i % 2 == 1
                first = bytes([0x10, 0x00 if i % 60 == 0 else 0x01]) if kind is MediaKind.VIDEO else b"\xf8"
                rtp = (
                    _RTP.pack(0x80, pt | (0x80 if marker else 0), i & 0xFFFF, ts, ssrc) + first + payload[2:]
                )
                epb = _epb(sent + rng.uniform(0, 0.015), rtp, port)
                assert out is not None
                out.write(epb)
                if roll > 0.998:
                    out.write(epb)
            assert out is not None
            out.close()
            first_wall, last_wall = T0 + start, T0 + seconds
            srs = [(_ntp(T0 + start + k * 5), k * 5 * clock) for k in range(int((seconds - start) // 5))]
            summaries.append(
                TrackSummary(
                    name=name,
                    state="complete",
                    kind=kind,
                    codec=codec,
                    clock_rate=clock,
                    payload_type=pt,
                    ssrc=ssrc,
                    container="webm",
                    first_wallclock=first_wall,
                    last_wallclock=last_wall,
                    frames=count // (2 if kind is MediaKind.VIDEO else 1),
                    packets_received=count - lost,
                    packets_lost=lost,
                    width=1280 if kind is MediaKind.VIDEO else None,
                    height=720 if kind is MediaKind.VIDEO else None,
                    gaps=[
                        Gap(
                            start_time=T0 + 600 * k,
                            end_time=T0 + 600 * k + 0.4,
                            packets_lost=6,
                            reason="loss",
                        )
                        for k in range(1, int(minutes // 10) + 1)
                    ],
                    pauses=[
                        PauseInterval(
                            start_time=T0 + seconds / 2,
                            end_time=T0 + seconds / 2 + 30,
                            by="agent",
                            reason="card number",
                        )
                    ],
                    layers=[
                        LayerInterval(
                            start_time=first_wall, end_time=T0 + seconds / 3, width=1280, height=720
                        ),
                        LayerInterval(start_time=T0 + seconds / 3, end_time=last_wall, width=640, height=360),
                    ]
                    if kind is MediaKind.VIDEO
                    else [],
                    rtcp_sender_reports=srs,
                )
            )
    for s in summaries:
        write_summary(folder, s)
    manifest = build_manifest(
        folder, folder.name, tracks=summaries, created_at=datetime.fromtimestamp(T0, UTC),
        finished_at=datetime.fromtimestamp(T0 + seconds, UTC), room_id="bench", track_participants=owners,
    )  # fmt: skip
    write_signed_manifest(folder, manifest, Ed25519PrivateKey.generate())


def one_run(folder: Path, out: Path) -> dict[str, float]:
    cpu = time.process_time()
    t = time.perf_counter()
    facts = analysis.read_facts(folder)
    t_verify = time.perf_counter() - t
    t = time.perf_counter()
    captures, problems = analysis.load_captures(folder, facts.tracks)
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    data = analysis.build(facts, captures, problems, analysis.bin_width(facts))
    t_analyze = time.perf_counter() - t
    t = time.perf_counter()
    figs = list(render.figures(data))
    render.write_html(data, figs, out / "report.html")
    render.write_pdf(data, figs, out / "report.pdf")
    t_render = time.perf_counter() - t
    total = t_verify + t_read + t_analyze + t_render
    packets = sum(c.count for c in captures.values())
    return {"total": total, "cpu": time.process_time() - cpu, "verify": t_verify, "read": t_read, "analyze": t_analyze, "render": t_render,
            "packets": packets}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--video-kbps", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="synthesize into (and keep) this folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        folder = base / "bench-call"
        if not folder.exists():
            started = time.perf_counter()
            synthesize(folder, args.minutes, args.video_kbps)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            print(
                f"synthesized {args.minutes:g} min, {size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s"
            )
        runs = [one_run(folder, base) for _ in range(args.runs)]
        print(f"{runs[0]['packets']:.0f} packets in the captures")
        print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        for key in ("total", "cpu", "read", "analyze", "verify", "render"):
            values = sorted(r[key] for r in runs)
            print(
                f"{key:8} s min/median/max: {values[0]:.2f} / {statistics.median(values):.2f} / {values[-1]:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
