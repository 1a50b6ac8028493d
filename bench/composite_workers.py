"""Composite throughput of a fleet's workers: a backlog of composite jobs in the PostgreSQL job queue
(procrastinate, recorder/jobs/queue.py) drained by 1 and then 2 `callvault serve` worker processes
(roles = ["worker"]), side by side.

    .venv/bin/python bench/composite_workers.py --calls 20 --seconds 20

A throwaway PostgreSQL (tests/helpers/postgres_kit.py) holds the queue; one two-party recording (an
agent's 1280x720 and a customer's 640x480 VP8 camera with Opus, bench/composite.py's inputs) is copied
into `--calls` recording folders of one shared data folder; for each configuration the same jobs (one HD
composite per call) are queued at once and the clock runs until the last job is done. Configurations:
1 and 2 workers with the encoder's own threads (what a worker does by default: one composite keeps both
cores busy), and 1 and 2 workers each pinned to its own core (taskset), which shows how throughput grows
with cores. Prints, per configuration, the wall time, the throughput as a multiple of real time (seconds
of call composited per second), the workers' CPU time, and the ratio 2 workers / 1 worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "helpers"), str(ROOT / "bench")]

from composite import make_inputs  # noqa: E402
from postgres_kit import PostgresServer  # noqa: E402

from recorder.jobs.queue import DONE, defer_composite, ensure_schema, job_states, make_app  # noqa: E402

COMPOSITE = '[composite]\nenabled = true\nprofiles = ["hd"]\nlayout = "side-by-side"\n'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker(work: Path, name: str, url: str, data_dir: Path, core: int | None) -> subprocess.Popen[bytes]:
    config = work / f"{name}.toml"
    config.write_text(
        f'data_dir = "{data_dir}"\nhttp_host = "127.0.0.1"\nhttp_port = {free_port()}\nroles = ["worker"]\n'
        f'[janus]\nenabled = false\n[api]\ncatalog_url = "{url}"\n'
        "[jobs]\nconcurrency = 1\nheartbeat_seconds = 2\nstalled_seconds = 600\n" + COMPOSITE
    )
    pin = ["taskset", "-c", str(core)] if core is not None else []
    return subprocess.Popen(
        [*pin, sys.executable, "-m", "recorder.cli", "serve", "--config", str(config)],
        stdout=(work / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )


def cpu_of(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


async def drain(url: str, ids: list[str], limit: float, procs: list[subprocess.Popen[bytes]]) -> float:
    """Queue one HD composite per recording; seconds until every job is done (all must succeed)."""
    app = make_app(url)
    async with app.open_async():
        start = time.monotonic()
        jobs = [await defer_composite(app, rid, "hd") for rid in ids]
        while True:
            states = await job_states(app, jobs)
            if all(states.get(j) in DONE for j in jobs):
                break
            if time.monotonic() - start > limit:
                raise TimeoutError(f"jobs not done within {limit} s: {states}")
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker stopped: see its log in the work folder")
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - start
        failed = [j for j in jobs if states[j] != "succeeded"]
        if failed:
            raise RuntimeError(f"jobs {failed} did not succeed")
        return elapsed


def run(
    work: Path, url: str, data_dir: Path, ids: list[str], cores: list[int | None], timeout: float
) -> tuple[float, float]:
    procs = [worker(work, f"w{i}-{time.monotonic_ns()}", url, data_dir, c) for i, c in enumerate(cores)]
    try:
        time.sleep(3.0)  # the workers connect and listen (a job queued before simply waits)
        ps = [psutil.Process(p.pid) for p in procs]
        cpu0 = cpu_of(ps)
        elapsed = asyncio.run(drain(url, ids, timeout, procs))
        cpu = cpu_of(ps) - cpu0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    for rid in ids:  # the next configuration builds them again
        for f in (data_dir / "recordings" / rid).glob("composite-*"):
            f.unlink()
    shutil.rmtree(data_dir / "composites", ignore_errors=True)
    return elapsed, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=20, help="recordings in the backlog")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each call")
    ap.add_argument("--timeout", type=float, default=1800.0, help="bound per configuration")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="cv-workers-") as tmp:
        work = Path(tmp)
        source = work / "source"
        make_inputs(source, args.seconds)
        data_dir = work / "data"
        ids = [f"20260101T0000{i:02d}Z-bench-{i:04d}" for i in range(args.calls)]
        for rid in ids:
            shutil.copytree(source, data_dir / "recordings" / rid)
        server = PostgresServer()
        server.start()
        try:
            url = server.create_database()
            asyncio.run(ensure_schema(url))
            call_seconds = args.calls * args.seconds
            configs = {
                "1 worker, encoder threads": [None],
                "2 workers, encoder threads": [None, None],
                "1 worker pinned to 1 core": [0],
                "2 workers pinned to 2 cores": [0, 1],
            }
            results = {}
            for label, cores in configs.items():
                load = os.getloadavg()[0]
                elapsed, cpu = run(work, url, data_dir, ids, cores, args.timeout)
                results[label] = elapsed
                print(
                    f"{label:30s} load {load:5.2f}  wall {elapsed:7.1f} s  {call_seconds / elapsed:5.2f}x real time"
                    f"  workers' CPU {cpu:7.1f} s",
                    flush=True,
                )
            unpinned = results["1 worker, encoder threads"] / results["2 workers, encoder threads"]
            pinned = results["1 worker pinned to 1 core"] / results["2 workers pinned to 2 cores"]
            print(
                f"throughput 2 workers / 1 worker: encoder threads {unpinned:.2f}x, one core each {pinned:.2f}x"
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
