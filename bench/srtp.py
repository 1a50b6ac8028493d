"""SRTP on the forward leg: what decrypting costs per packet. Captured VP8 (1 Mbit/s, 640x360) and Opus
packets of N calls are protected once with libsrtp as Janus's forwarder does, then fed in arrival order
through `TrackReceiver.datagram_received` (as bench/hotpath.py does: no sockets, no event loop), once as
plain RTP and once as SRTP; also the bare `SrtpReceiver.unprotect` per packet. Prints the CPU cost per
packet of each, the difference, and what it adds per call at the media's packet rate.

    .venv/bin/python bench/srtp.py --calls 20 --seconds 10 [--suite AES_CM_128_HMAC_SHA1_32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hotpath import NoSocket
from ingest import Capture, make_media

from recorder.assembly.pipeline import StreamPipeline
from recorder.crypto.srtp import SrtpKey, SrtpReceiver, SrtpSender, SrtpSuite
from recorder.ingest.track import TrackReceiver
from recorder.models import Codec, StreamSpec

SENDER = ("127.0.0.1", 9)


def protected(capture: Capture, key: SrtpKey) -> list[bytes]:
    sender = SrtpSender(key)
    return [sender.protect(p) for p in capture.packets]


def run(video: Capture, audio: Capture, calls: int, suite: SrtpSuite | None) -> tuple[int, float, int]:
    """(packets, CPU seconds, packets dropped as unauthenticated) of one pass through N calls' receivers."""
    receivers: list[tuple[TrackReceiver, list[bytes], list[float]]] = []
    for i in range(calls):
        for codec, pt, capture, clock in ((Codec.VP8, 96, video, 90000), (Codec.OPUS, 97, audio, 48000)):
            spec = StreamSpec(
                name=f"{i}-{codec.value}", codec=codec, payload_type=pt, clock_rate=clock, port=1
            )
            key = SrtpKey.generate(suite) if suite is not None else None
            receiver = TrackReceiver(
                spec, StreamPipeline(spec, "webm"), srtp=SrtpReceiver(key) if key else None
            )
            receiver.rtp_socket = NoSocket()
            packets = protected(capture, key) if key is not None else capture.packets
            receivers.append((receiver, packets, capture.times))
    events = sorted(
        ((t, n, r, p) for n, (r, ps, ts) in enumerate(receivers) for p, t in zip(ps, ts, strict=True)),
        key=lambda e: (e[0], e[1]),
    )
    start, last_tick, base = time.process_time(), 0.0, time.time()
    for t, _, receiver, packet in events:
        receiver.datagram_received(packet, SENDER)
        if t - last_tick >= 0.05:
            last_tick = t
            for r, _, _ in receivers:
                r.pipeline.tick(base + t + 1)
                r.pipeline.take_output()
    cpu = time.process_time() - start
    dropped = sum(r.pipeline.unauthenticated_packets + r.pipeline.replayed_packets for r, _, _ in receivers)
    return len(events), cpu, dropped


def bare_unprotect(video: Capture, suite: SrtpSuite) -> float:
    """µs of CPU per `SrtpReceiver.unprotect` of a video packet."""
    key = SrtpKey.generate(suite)
    packets = protected(video, key)
    receiver = SrtpReceiver(key)
    start = time.process_time()
    for p in packets:
        receiver.unprotect(p)
    assert receiver.unauthenticated == receiver.replayed == 0
    return 1e6 * (time.process_time() - start) / len(packets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--suite", type=SrtpSuite, default=SrtpSuite.AES_CM_128_HMAC_SHA1_80)
    args = ap.parse_args()
    video, audio = make_media(args.seconds)
    plain, srtp, bare = [], [], []
    packets = 0
    for _ in range(args.runs):  # interleaved, so the machine's load hits both alike
        packets, cpu, _ = run(video, audio, args.calls, None)
        plain.append(1e6 * cpu / packets)
        packets, cpu, dropped = run(video, audio, args.calls, args.suite)
        assert dropped == 0, dropped
        srtp.append(1e6 * cpu / packets)
        bare.append(bare_unprotect(video, args.suite))
    rate = (len(video.packets) + len(audio.packets)) / args.seconds  # packets per second of one call

    def fmt(costs: list[float]) -> str:
        return f"{min(costs):.2f} / {statistics.median(costs):.2f} / {max(costs):.2f}"

    extra = statistics.median(srtp) - statistics.median(plain)
    print(f"{args.calls} calls, {packets} packets per run, {rate:.0f} packets/s per call, {args.suite.value}")
    print(f"pipeline, plain RTP:  µs/packet min/median/max {fmt(plain)}")
    print(f"pipeline, SRTP:       µs/packet min/median/max {fmt(srtp)}")
    print(f"unprotect alone:      µs/packet min/median/max {fmt(bare)}")
    print(
        f"SRTP adds {extra:.2f} µs/packet (median difference), {100 * extra / statistics.median(plain):.0f} % of"
        f" the pipeline; per call {extra * rate / 1e4:.3f} % of one core"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
