"""Hot-path benchmark: the per-packet work of the recorder without sockets or event loop. Captured VP8
and Opus packets of N calls are fed, in arrival order, through `TrackReceiver.datagram_received` (parse,
filters, reorder, frame assembly, depacketize, timeline) with the 20 Hz timer step every 50 ms of media
time; prints the CPU cost per packet.

    .venv/bin/python bench/hotpath.py --calls 20 --seconds 10 [--profile]
    CALLVAULT_NATIVE=0 .venv/bin/python bench/hotpath.py ...   # the pure-Python modules, when compiled ones exist

What this leaves out (sockets, the event loop, muxing, summaries) is in bench/ingest.py's figures.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import Capture, make_media

from recorder import native
from recorder.assembly.pipeline import StreamPipeline
from recorder.ingest.track import TrackReceiver
from recorder.models import Codec, StreamSpec


class NoSocket:
    port = 0

    def connect(self, peer: tuple[str, int]) -> None:
        pass

    def sendto(self, data: bytes, addr: tuple[str, int]) -> bool:
        return True

    def close(self) -> None:
        pass


def run(video: Capture, audio: Capture, calls: int) -> tuple[int, float]:
    receivers: list[tuple[TrackReceiver, Capture]] = []
    for i in range(calls):
        for codec, pt, capture, clock in ((Codec.VP8, 96, video, 90000), (Codec.OPUS, 97, audio, 48000)):
            spec = StreamSpec(
                name=f"{i}-{codec.value}", codec=codec, payload_type=pt, clock_rate=clock, port=1
            )
            receiver = TrackReceiver(spec, StreamPipeline(spec, "webm"))
            receiver.rtp_socket = NoSocket()
            receivers.append((receiver, capture))
    events = sorted(
        ((t, n, r, p) for n, (r, c) in enumerate(receivers) for p, t in zip(c.packets, c.times, strict=True)),
        key=lambda e: (e[0], e[1]),
    )
    sender = ("127.0.0.1", 9)
    start, last_tick, base = time.process_time(), 0.0, time.time()
    for t, _, receiver, packet in events:
        receiver.datagram_received(packet, sender)
        if t - last_tick >= 0.05:
            last_tick = t
            for r, _ in receivers:
                r.pipeline.tick(base + t + 1)
                r.pipeline.take_output()
    return len(events), time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="print the 20 costliest functions")
    args = ap.parse_args()
    print(native.describe())
    video, audio = make_media(args.seconds)
    costs = []
    for _ in range(args.runs):
        packets, cpu = run(video, audio, args.calls)
        costs.append(1e6 * cpu / packets)
    costs.sort()
    print(f"{packets} packets per run; µs per packet min/median/max: "
          f"{costs[0]:.2f} / {costs[len(costs) // 2]:.2f} / {costs[-1]:.2f}")  # fmt: skip
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(run, video, audio, args.calls)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
