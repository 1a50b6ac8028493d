"""Time to available: from the moment the last track of a call is finished (RecordingSession.stop() is
called) until recording.finished has been delivered to a webhook receiver, with every object of the
recording in S3 (the archive publishes only once the spool has uploaded and hash-checked everything).

Each recording is a real call: two participants, each sending VP8 + Opus that Debian's ffmpeg encoded,
replayed as RTP at real rate (or as fast as possible with --fast) into a RecordingSession whose listener
is an Archive uploading to a moto_server S3 process and announcing to an aiohttp receiver on 127.0.0.1.
Settings are the defaults (spool concurrency 4, WORM off on a plain bucket) but for the fast
retry-free test endpoint.

    .venv/bin/python bench/time_to_available.py --recordings 20 --seconds 2 [--parallel 1] [--fast]

`--parallel N` runs the calls in waves of N that start and end together, each wave announced before the
next starts (`--rolling`: a new call as soon as one is announced, the mode before 2026-12-01).
`--s3 s3rver` uses s3rver (Node, `make s3rver`) instead of moto_server as the S3 server.

Besides the latencies it prints the load average before the run and the CPU seconds the run took in
this process (recording, archive, uploads' client side, webhook receiver) and in the S3 server: on a
busy machine the latencies grow with the load, the CPU seconds much less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the real recorder package before tests/recorder
sys.path.append(str(ROOT / "tests" / "helpers"))
sys.path.append(str(ROOT / "tests"))

from archive_kit import Receiver, record_call  # noqa: E402
from media import encode_reference  # noqa: E402
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer, free_port  # noqa: E402

from recorder.archive import Archive, ArchiveSettings  # noqa: E402
from recorder.mux.workers import MuxWorkers  # noqa: E402
from recorder.storage.settings import SpoolSettings  # noqa: E402
from recorder.webhooks import generate_secret  # noqa: E402

S3RVER = ROOT / "tests" / "lifecycle" / "s3rver" / "node_modules" / ".bin" / "s3rver"
PARTICIPANTS = {"agent": ["vp8", "opus"], "customer": ["vp8", "opus"]}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class S3rver:
    """s3rver (an S3 server in Node, pinned in tests/lifecycle/s3rver, `make s3rver`) as the bench's store:
    a second real server whose own CPU per request is not moto_server's."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        data.mkdir()
        address = ["-a", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(
            [str(S3RVER), "-d", str(data), *address, "-s", "--configure-bucket", PLAIN_BUCKET],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"s3rver did not start on {self.endpoint}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def s3_server(kind: str, work: Path) -> tuple[str, str, str, psutil.Process, Callable[[], None]]:
    """Start the bench's S3 server: (endpoint, access key, secret key, its process, stop)."""
    if kind == "s3rver":
        if not S3RVER.exists():
            raise SystemExit("s3rver is not installed: run `make s3rver`")
        s3rver = S3rver(work / "s3rver")
        return s3rver.endpoint, "S3RVER", "S3RVER", psutil.Process(s3rver.proc.pid), s3rver.stop
    moto = MotoServer()
    moto.start()
    moto.create_buckets()
    assert moto.proc is not None
    return moto.endpoint, ACCESS_KEY, SECRET_KEY, psutil.Process(moto.proc.pid), moto.stop


async def run(args: argparse.Namespace, work: Path) -> dict[str, object]:
    refs = {c: encode_reference(c, work, args.seconds) for c in ("vp8", "opus")}
    endpoint, access_key, secret_key, server, stop_server = s3_server(args.s3, work)
    cpu0, server0 = time.process_time(), sum(server.cpu_times()[:2])
    receiver = Receiver(free_port(), generate_secret())
    await receiver.start()
    settings = ArchiveSettings.model_validate(
        {
            "storage": {
                "backend": "s3",
                "s3": {
                    "endpoint": endpoint,
                    "bucket": PLAIN_BUCKET,
                    "secure": False,
                    "access_key": access_key,
                    "secret_key": secret_key,
                    # s3rver has no object lock (WORM needs it); on moto's plain bucket the default
                    # setting finds no lock once and stores without retention, as with it off
                    **({"worm": {"enabled": False}} if args.s3 == "s3rver" else {}),
                },
            },
            "spool": {"concurrency": args.upload_concurrency},
            "signing": {"key_env": "CALLVAULT_BENCH_NO_SUCH_VAR"},
            "webhooks": {"endpoints": [{"id": "bench", "url": receiver.url, "secret": receiver.secret}]},
        }
    )
    archive = Archive(settings, work / "data")
    workers = MuxWorkers(2)
    await archive.start()
    results: list[dict[str, float]] = []
    objects: list[int] = []

    async def one(index: int) -> None:
        recording_id = f"bench-{index:03d}-{uuid.uuid4().hex[:6]}"
        folder = work / "data" / "recordings" / recording_id
        call, summaries, stopped = await record_call(
            folder,
            recording_id,
            [archive],
            PARTICIPANTS,
            refs,
            workers,
            segment_seconds=args.segment_seconds,
            realtime=not args.fast,
        )
        tracks_done = time.monotonic()
        await archive.recording_finished(call.info, summaries)
        item = await receiver.wait_for(recording_id, "recording.finished", within=60)
        manifest = item.event.data.manifest  # type: ignore[union-attr]
        objects.append(len(manifest.objects) + 2)
        results.append(
            {
                "total": item.at - stopped,
                "session_stop": tracks_done - stopped,
                "archive": item.at - tracks_done,
            }
        )

    semaphore = asyncio.Semaphore(args.parallel)

    async def limited(index: int) -> None:
        async with semaphore:
            await one(index)

    async def waves() -> None:
        # `parallel` calls start together, end together and are all announced before the next wave
        # starts: the next calls' RTP senders (an ffmpeg process per track, ~60 ms of CPU each to
        # start) do not run during the burst being measured.
        for first in range(0, args.recordings, args.parallel):
            last = min(args.recordings, first + args.parallel)
            await asyncio.gather(*(one(i) for i in range(first, last)))

    started = time.monotonic()
    try:
        if args.rolling:
            await asyncio.gather(*(limited(i) for i in range(args.recordings)))
        else:
            await waves()
        cpu, server_cpu = time.process_time() - cpu0, sum(server.cpu_times()[:2]) - server0
    finally:
        await archive.stop()
        workers.shutdown()
        await receiver.stop()
        stop_server()
    wall = time.monotonic() - started
    summary: dict[str, object] = {
        "recordings": args.recordings,
        "parallel": args.parallel,
        "seconds": args.seconds,
        "objects_per_recording": statistics.mean(objects),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 2),
        "s3_server": args.s3,
        "s3_server_cpu_seconds": round(server_cpu, 2),
    }
    for part in ("total", "session_stop", "archive"):
        values = [r[part] for r in results]
        summary[part] = {
            "p50": round(percentile(values, 50), 3),
            "p95": round(percentile(values, 95), 3),
            "max": round(max(values), 3),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0, help="media length of each call")
    parser.add_argument("--parallel", type=int, default=1, help="calls recorded at once")
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument(
        "--upload-concurrency",
        type=int,
        default=SpoolSettings().concurrency,
        help=f"spool.concurrency (uploads in flight; default {SpoolSettings().concurrency}, the setting's)",
    )
    parser.add_argument(
        "--s3",
        choices=("moto", "s3rver"),
        default="moto",
        help="the bench's S3 server: moto_server (Python, default) or s3rver (Node, `make s3rver`)",
    )
    parser.add_argument(
        "--rolling",
        action="store_true",
        help="start a new call as soon as one is announced (before 2026-12-01 the only mode: the next"
        " calls' ffmpeg senders then start during the burst being measured); default: waves of"
        " --parallel calls, each wave announced before the next starts",
    )
    parser.add_argument("--fast", action="store_true", help="replay RTP as fast as ffmpeg can send")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cv-tta-") as tmp:
        summary = asyncio.run(run(args, Path(tmp)))
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{summary['recordings']} recordings, {summary['parallel']} at a time, {args.seconds:g} s of media,"
        f" 2 participants x VP8+Opus, {summary['objects_per_recording']:.1f} objects each,"
        f" {args.upload_concurrency} uploads in flight, {'rolling' if args.rolling else 'in waves'},"
        f" wall {summary['wall_seconds']} s"
    )
    print(
        f"load average before {load:.2f}; CPU: this process {summary['cpu_seconds']} s,"
        f" S3 server ({args.s3}) {summary['s3_server_cpu_seconds']} s"
    )
    for part, label in (
        ("total", "stop() -> recording.finished delivered"),
        ("session_stop", "  of which session.stop() (close, join)"),
        ("archive", "  of which archive (seal, upload, webhook)"),
    ):
        f = summary[part]
        assert isinstance(f, dict)
        print(f"{label:45s} p50 {f['p50']:.3f} s  p95 {f['p95']:.3f} s  max {f['max']:.3f} s")
    total = summary["total"]
    assert isinstance(total, dict)
    print("goal p95 <= 1 s:", "met" if total["p95"] <= 1.0 else "NOT met")


if __name__ == "__main__":
    main()
