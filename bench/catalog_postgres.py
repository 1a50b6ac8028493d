"""Catalog search on PostgreSQL: the console's searches (bench/console_search.py's list) answered by
Catalog.search on a PostgreSQL catalog of N recordings (default 1,000,000; 2 participants and 2 tags each,
1 in 1,000 live, spread over 90 days: console_search.py's distribution, inserted in bulk by SQL). A
throwaway server (tests/helpers/postgres_kit.py: initdb in a temporary folder) unless --url names one.
Prints each query's median and 95th percentile (the catalog call on its worker thread: SQL, rows, models;
no HTTP), the machine's load before the run, and the plan of the slowest query.

    .venv/bin/python bench/catalog_postgres.py [--recordings 1000000] [--repeat 20] [--url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "helpers"), str(ROOT / "tests" / "api"), str(ROOT / "bench")]
from console_search import AGENTS, DAY, ROOMS, queries  # noqa: E402
from postgres_kit import PostgresServer  # noqa: E402

from recorder.api.catalog import Catalog  # noqa: E402
from recorder.api.db import Database  # noqa: E402
from recorder.api.models import SearchQuery  # noqa: E402

FILL = """
INSERT INTO recordings (recording_id, room_id, call_id, folder, status, started_at, finished_at, duration,
                        tracks, bytes, updated_at)
SELECT '20260101T000000Z-bench-' || lpad(to_hex(i), 8, '0'), 'room-' || (i % {rooms}), 'call-' || i,
       '/nonexistent/' || i, CASE WHEN i % 1000 = 999 THEN 'recording' ELSE 'finished' END, s,
       CASE WHEN i % 1000 = 999 THEN NULL ELSE s + 60 + (i * 37) % 1800 END,
       CASE WHEN i % 1000 = 999 THEN NULL ELSE 60 + (i * 37) % 1800 END,
       0, (i * 7919) % 50000000, {now}
FROM (SELECT i, {now} - ({n} - i) * (90 * {day} / {n}) AS s FROM generate_series(0::bigint, {n} - 1) AS i) g;
INSERT INTO participants (recording_id, participant_id, display_name, joined_at)
SELECT '20260101T000000Z-bench-' || lpad(to_hex(i), 8, '0'), p.id, p.name, NULL
FROM generate_series(0::bigint, {n} - 1) AS i,
     LATERAL (VALUES ('agent-' || (i % {agents}), 'Agent ' || (i % {agents})),
                     ('cust-' || i, 'Customer ' || i)) AS p(id, name);
INSERT INTO tags (recording_id, participant_id, key, value)
SELECT '20260101T000000Z-bench-' || lpad(to_hex(i), 8, '0'), '', t.k, t.v
FROM generate_series(0::bigint, {n} - 1) AS i,
     LATERAL (VALUES ('queue', (ARRAY['billing', 'sales', 'support'])[i % 3 + 1]),
                     ('lang', (ARRAY['en', 'de'])[i % 2 + 1])) AS t(k, v);
"""


def search_query(params: dict[str, str | list[str]]) -> SearchQuery:
    data: dict[str, object] = {"limit": 50, **params}
    if isinstance(data.get("tag"), str):
        data["tag"] = [data["tag"]]
    return SearchQuery.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--url", help="an existing, empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--only", default="", help="only the queries whose name contains this")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = PostgresServer()
        server.start()
        url = server.create_database()
    try:
        run(url, args.recordings, args.repeat, args.only)
    finally:
        if server is not None:
            server.stop()


def run(url: str, n: int, repeat: int, only: str) -> None:
    db = Database(url)
    catalog = Catalog(db)
    now = time.time()
    c = db.connection
    started = time.perf_counter()
    sql = FILL.format(rooms=ROOMS, agents=AGENTS, n=n, now=now, day=DAY)
    db.submit(lambda: [c.execute(s) for s in sql.split(";\n") if s.strip()]).result()
    db.submit(lambda: c.execute("ANALYZE")).result()
    print(f"catalogued {n} recordings in {time.perf_counter() - started:.1f} s (bulk SQL, then ANALYZE)")
    print(f"load average before the searches: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'query':<28} {'total':>8} {'median ms':>10} {'p95 ms':>8}")
    slowest: tuple[float, str, SearchQuery | None] = (0.0, "", None)
    for name, params in queries(n, now).items():
        if only not in name:
            continue
        q = search_query(params)
        times, total = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            page = db.submit(lambda q=q: catalog.search(q)).result()  # type: ignore[misc]
            times.append((time.perf_counter() - t0) * 1000)
            total = page.total
        median = statistics.median(times)
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(f"{name:<28} {total:>8} {median:>10.1f} {p95:>8.1f}")
        if median > slowest[0]:
            slowest = (median, name, q)
    print(f"slowest: {slowest[1]}")
    db.close()


if __name__ == "__main__":
    main()
