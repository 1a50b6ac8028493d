"""Records lifecycle benchmark: scheduled deletion of N catalogued recordings (synthetic catalog entries,
each with small objects in the local store) and an export of M recordings (one evidence bundle each).
Prints wall time, time per recording and peak memory (tracemalloc, Python allocations) of each phase, at
two sizes, so "flat per recording" can be read off.

    .venv/bin/python bench/lifecycle.py --recordings 100000 --export 1000 [--objects 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.files import StorageAccess
from recorder.lifecycle.deletion import DeletionScheduler
from recorder.lifecycle.exports import ExportRunner
from recorder.lifecycle.models import ExportFilter, ExportRequest, Include
from recorder.lifecycle.rules import KeepPeriods
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.keys import DEFAULT_KEY_TEMPLATE
from recorder.storage.local import LocalStore

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp()


def populate(db: Database, store: LocalStore, access: StorageAccess, n: int, objects: int, room: str) -> None:
    names = ["manifest.json", *(f"100{i}-video-{i}.webm" for i in range(objects - 1))]
    payload = b"x" * 2048

    def insert(start: int, stop: int) -> None:
        c = db.connection
        c.execute("BEGIN")
        c.executemany(
            "INSERT INTO recordings (recording_id, room_id, folder, status, started_at, finished_at,"
            " duration, updated_at) VALUES (?, ?, ?, 'finished', ?, ?, 600, ?)",
            [
                (f"{room}-{i:07d}", room, f"/nonexistent/{i}", T0 + i, T0 + i + 600, T0)
                for i in range(start, stop)
            ],
        )
        c.execute("COMMIT")

    for start in range(0, n, 5000):
        db.submit(lambda s=start: insert(s, min(s + 5000, n))).result()  # type: ignore[misc]

    def put(i: int) -> None:  # under its own start's date, as the archive stores it (T0 + i)
        prefix = access.prefix(f"{room}-{i:07d}", datetime.fromtimestamp(T0 + i, UTC), None)
        for name in names:
            store.put_bytes(prefix + name, payload)

    with ThreadPoolExecutor(16) as pool:  # each put fsyncs: threads overlap the waits (setup only)
        for _ in pool.map(put, range(n), chunksize=256):
            pass


async def deletion(root: Path, n: int, objects: int, memory: bool = True) -> tuple[float, int, int]:
    db = Database(root / "catalog.sqlite3")
    store = LocalStore(root / "store")
    access = StorageAccess(store, DEFAULT_KEY_TEMPLATE)
    t = time.perf_counter()
    populate(db, store, access, n, objects, "del")
    setup = time.perf_counter() - t
    settings = LifecycleSettings(defaults=KeepPeriods(originals=1), batch_size=1000)
    scheduler = DeletionScheduler(
        settings,
        db,
        AuditLog(db),
        lambda: access,
        root / "recordings",
        lambda _rid: False,
        lambda: None,
        clock=lambda: T0 + 10 * 86400 + n,
    )
    if memory:  # tracemalloc slows Python down severalfold: time is measured without it (--no-memory)
        tracemalloc.start()
    t = time.perf_counter()
    cpu = time.process_time()
    deleted = 0
    passes: list[tuple[float, float]] = []
    while True:
        t_pass, cpu_pass = time.perf_counter(), time.process_time()
        report = await scheduler.run_once()
        if not report.deleted_whole:
            break
        deleted += len(report.deleted_whole)
        passes.append((time.perf_counter() - t_pass, time.process_time() - cpu_pass))
    took = time.perf_counter() - t
    cpu = time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1] if memory else 0
    if memory:
        tracemalloc.stop()
    left = sum(1 for _ in (root / "store").rglob("*.webm"))
    assert left == 0, f"{left} media files not deleted"
    await asyncio.to_thread(db.close)
    load = os.getloadavg()[0]
    per_pass = [c for _, c in passes]
    first, last = (per_pass[0], per_pass[-1]) if per_pass else (0.0, 0.0)
    print(
        f"  (setup {setup:.1f} s; files left {left}; load {load:.1f}; CPU {cpu:.1f} s ="
        f" {cpu / max(deleted, 1) * 1000:.2f} ms per recording (all threads); {len(passes)} passes of"
        f" {settings.batch_size}: first {first:.2f} s CPU, last {last:.2f} s CPU;"
        f" {deleted / took:.0f} recordings/s wall, {deleted / max(cpu, 1e-9):.0f}/s per CPU second)"
    )
    return took, deleted, peak


async def export(root: Path, m: int, objects: int) -> tuple[float, int, int]:
    db = Database(root / "catalog.sqlite3")
    store = LocalStore(root / "store")
    access = StorageAccess(store, DEFAULT_KEY_TEMPLATE)
    populate(db, store, access, m, objects, "exp")
    key = Ed25519PrivateKey.generate()
    runner = ExportRunner(
        LifecycleSettings(export_max_recordings=max(m, 1)),
        root,
        db,
        Catalog(db),
        AuditLog(db),
        lambda: access,
        lambda: key,
        lambda: None,
    )
    tracemalloc.start()
    t = time.perf_counter()
    job = await runner.create(
        ExportRequest(filter=ExportFilter(room="exp"), include=[Include.ORIGINALS, Include.MANIFESTS]),
        "bench",
    )
    await runner.wait(job.job_id)
    took = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    done = await runner.get(job.job_id)
    assert done is not None and done.done == m, done
    await asyncio.to_thread(db.close)
    return took, m, peak


def line(what: str, took: float, count: int, peak: int) -> None:
    per = took / count * 1000 if count else 0.0
    print(
        f"{what}: {count} recordings in {took:.1f} s = {per:.2f} ms each; peak Python memory {peak / 1e6:.1f} MB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--export", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=2, help="objects per recording (manifest + media)")
    parser.add_argument("--no-deletion", action="store_true", help="only the export phase")
    parser.add_argument("--no-export", action="store_true", help="only the deletion phase")
    parser.add_argument(
        "--no-memory", action="store_true", help="no tracemalloc (it slows Python down: for timing)"
    )
    args = parser.parse_args()
    for n in () if args.no_deletion else (args.recordings // 10, args.recordings):
        with tempfile.TemporaryDirectory() as tmp:
            line(f"deletion (N={n})", *await deletion(Path(tmp), n, args.objects, not args.no_memory))
    for m in () if args.no_export else (args.export // 10, args.export):
        with tempfile.TemporaryDirectory() as tmp:
            line(f"export (M={m})", *await export(Path(tmp), m, args.objects))
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    asyncio.run(main())
