"""Catalog search on PostgreSQL: the console's searches (bench/console_search.py's list, plus words said and
filters combined with sorts) answered by Catalog.search on a PostgreSQL catalog of N recordings (default
1,000,000; 2 participants and 2 tags each, 1 in 1,000 live, spread over 90 days: console_search.py's
distribution; 1 in 10 transcribed, 4 segments each; inserted in bulk by SQL). A throwaway server
(tests/helpers/postgres_kit.py: initdb in a temporary folder) unless --url names one; a catalog already
filled (--url again) is reused (brought to the current schema revision, not refilled), so the data is built
once. Prints each query's median and 95th percentile per run (the catalog call on its worker thread: SQL,
rows, models; no HTTP), the machine's load before each run, and with --old the same for the query shape
before the capped count and the sort indexes (its SQL, kept here), side by side.

    .venv/bin/python bench/catalog_postgres.py [--recordings 1000000] [--repeat 20] [--runs 3] [--old]
        [--url postgresql://...] [--only NAME] [--explain]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "helpers"), str(ROOT / "tests" / "api"), str(ROOT / "bench")]
import recorder  # noqa: E402, F401  (imported before tests/ joins the path: tests/recorder would shadow it)

sys.path.append(str(ROOT / "tests"))  # janus_fixture, which api_kit needs
from console_search import AGENTS, DAY, ROOMS, queries  # noqa: E402
from postgres_kit import PostgresServer  # noqa: E402

from recorder.api import search  # noqa: E402
from recorder.api.catalog import Catalog  # noqa: E402
from recorder.api.db import Database  # noqa: E402
from recorder.api.models import RecordingPage, SearchQuery, SortField, SortOrder  # noqa: E402

FILL = """
INSERT INTO recordings (recording_id, room_id, call_id, folder, status, started_at, finished_at, duration,
                        tracks, bytes, updated_at, participant_count)
SELECT '20260101T000000Z-bench-' || lpad(to_hex(i), 8, '0'), 'room-' || (i % {rooms}), 'call-' || i,
       '/nonexistent/' || i, CASE WHEN i % 1000 = 999 THEN 'recording' ELSE 'finished' END, s,
       CASE WHEN i % 1000 = 999 THEN NULL ELSE s + 60 + (i * 37) % 1800 END,
       CASE WHEN i % 1000 = 999 THEN NULL ELSE 60 + (i * 37) % 1800 END,
       0, (i * 7919) % 50000000, {now}, 2
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

TRANSCRIBE = """
INSERT INTO transcript_segments (text, recording_id, speaker, start, "end")
SELECT t.text, '20260101T000000Z-bench-' || lpad(to_hex(i), 8, '0'), t.speaker, t.start, t.start + 4
FROM generate_series(0::bigint, {n} - 1, 10) AS i,
     LATERAL (VALUES ('hello thank you for calling how can I help', 'agent-' || (i % {agents}), 0.5),
                     (CASE WHEN i % 30 = 0 THEN 'I would like a refund for this order'
                           ELSE 'I have a question about my invoice' END, 'cust-' || i, 5.0),
                     (CASE WHEN i % 1000 = 0 THEN 'let me escalate this to my supervisor'
                           ELSE 'let me look that up for you' END, 'agent-' || (i % {agents}), 10.0),
                     ('thank you goodbye', 'cust-' || i, 15.0)) AS t(text, speaker, start);
"""
"""1 in 10 recordings transcribed (4 segments): "refund" in 1 of 3 of them, "escalate supervisor" in 1 in
100 (recording ids divisible by 30 and by 1,000)."""


def all_queries(n: int, now: float) -> dict[str, dict[str, str | list[str]]]:
    """console_search.py's list, words said, and the broad filters with the sorts the console offers."""
    found: dict[str, dict[str, str | list[str]]] = dict(queries(n, now))
    found |= {
        "text q=refund": {"q": "refund"},
        "text q=escalate supervisor": {"q": "escalate supervisor"},
        "status finished": {"status": "finished"},
        "tag, sort participants": {"tag": "queue:billing", "sort": "participants"},
        "tag, sort duration": {"tag": "queue:billing", "sort": "duration"},
        "two tags, sort room asc": {"tag": ["queue:billing", "lang:de"], "sort": "room", "order": "asc"},
        "7 days, sort finished_at": {
            "started_after": queries(n, now)["last 7 days"]["started_after"],
            "sort": "finished_at",
        },
        "sort status asc": {"sort": "status", "order": "asc"},
    }
    return found


def search_query(params: dict[str, str | list[str]]) -> SearchQuery:
    data: dict[str, object] = {"limit": 50, **params}
    if isinstance(data.get("tag"), str):
        data["tag"] = [data["tag"]]
    return SearchQuery.model_validate(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recordings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1, help="passes over every query (load printed each)")
    parser.add_argument("--url", help="a PostgreSQL database: empty (filled) or filled by an earlier run")
    parser.add_argument("--only", default="", help="only the queries whose name contains this")
    parser.add_argument("--old", action="store_true", help="also time the old query shape, side by side")
    parser.add_argument("--old-repeat", type=int, default=5, help="repeats of the old shape (seconds each)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each query's SQL")
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        server = PostgresServer()
        server.start()
        url = server.create_database()
    try:
        run(url, args)
    finally:
        if server is not None:
            server.stop()


def fill(db: Database, n: int) -> float:
    """The catalog's rows (unless an earlier run wrote them); returns the time they are spread up to."""
    c = db.connection
    row = db.submit(lambda: c.execute("SELECT COUNT(*), MAX(updated_at) FROM recordings").fetchone()).result()
    transcribed = db.submit(lambda: c.execute("SELECT COUNT(*) FROM transcript_segments").fetchone()).result()
    if row[0] and transcribed[0]:
        print(f"reusing the {row[0]} recordings catalogued earlier")
        return float(row[1])
    now = float(row[1]) if row[0] else time.time()
    started = time.perf_counter()
    sql = "" if row[0] else FILL.format(rooms=ROOMS, agents=AGENTS, n=n, now=now, day=DAY)
    sql += TRANSCRIBE.format(agents=AGENTS, n=row[0] or n) + search.ALL_RECORDING_WORDS + ";\n"
    db.submit(lambda: [c.execute(s) for s in sql.split(";\n") if s.strip()]).result()
    db.submit(lambda: c.execute("ANALYZE")).result()
    print(f"catalogued {n} recordings in {time.perf_counter() - started:.1f} s (bulk SQL, then ANALYZE)")
    return now


def run(url: str, args: argparse.Namespace) -> None:
    db = Database(url)
    catalog = Catalog(db)
    n_recordings = args.recordings
    now = fill(db, n_recordings)
    c = db.connection
    if args.explain:
        explain(db, catalog, now, args.only)
    shapes: dict[str, Callable[[SearchQuery], RecordingPage]] = {"new": catalog.search}
    if args.old:
        shapes["old"] = lambda q: old_search(catalog, q)
    for number in range(1, args.runs + 1):
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\nrun {number}: load average before: {load}")
        heads = "".join(f" {k + ' p50':>9} {k + ' p95':>9}" for k in shapes)
        print(f"{'query':<30} {'total':>9}{heads}")
        for name, params in all_queries(n_recordings, now).items():
            if args.only not in name:
                continue
            q = search_query(params)
            figures, shown = "", ""
            for shape, answer in shapes.items():
                times: list[float] = []
                for _ in range(args.repeat if shape == "new" else args.old_repeat):
                    t0 = time.perf_counter()
                    page = db.submit(lambda q=q, answer=answer: answer(q)).result()  # type: ignore[misc]
                    times.append((time.perf_counter() - t0) * 1000)
                if shape == "new":
                    shown = f"{page.total}{'' if page.total_exact else '+'}"
                p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
                figures += f" {statistics.median(times):>9.1f} {p95:>9.1f}"
            print(f"{name:<30} {shown:>9}{figures}", flush=True)
    del c
    db.close()


def explain(db: Database, catalog: Catalog, now: float, only: str) -> None:
    """EXPLAIN ANALYZE of the count and the page of each query (as Catalog.search builds them)."""
    for name, params in all_queries(1_000_000, now).items():
        if only not in name:
            continue
        q = search_query(params)
        f = search.build_filter(q, "postgresql", time.time())
        count, count_args = search.count_sql(f, catalog.count_limit)
        page, page_args = search.page_sql(q, f, time.time(), walk=False)
        for what, sql, sql_args in (("count", count, count_args), ("page", page, page_args)):
            plan = db.submit(
                lambda sql=sql, sql_args=sql_args: db.connection.execute(
                    "EXPLAIN (ANALYZE, COSTS OFF) " + sql, sql_args
                ).fetchall()
            ).result()
            print(f"\n--- {name}: {what}")
            print("\n".join(r[0] for r in plan))


# -- the query shape before (Catalog.search as of commit 986a8fe), for the side-by-side figures -------------


def old_search(catalog: Catalog, q: SearchQuery) -> RecordingPage:
    c = catalog.db.connection
    now = time.time()
    f = search.build_filter(q, catalog.db.dialect, now)  # the same filters, then the old count and sorts
    total = int(c.execute(f"SELECT COUNT(*) FROM recordings r {f.clause()}", f.args).fetchone()[0])
    key, key_args = _OLD_KEYS[q.sort], [now] if q.sort in (SortField.DURATION, SortField.FINISHED_AT) else []
    direction = "ASC" if q.order is SortOrder.ASC else "DESC"
    rows = c.execute(
        f"SELECT {'r.*' if q.sort is SortField.STARTED_AT else 'r.recording_id'} FROM recordings r"
        f" {f.clause()} ORDER BY {key} {direction}, r.recording_id {direction} LIMIT ? OFFSET ?",
        [*f.args, *key_args, q.limit, q.offset],
    ).fetchall()
    if rows and q.sort is not SortField.STARTED_AT:
        ids = [r[0] for r in rows]
        by_id = {
            r["recording_id"]: r
            for r in c.execute(
                f"SELECT * FROM recordings WHERE recording_id IN ({','.join('?' * len(ids))})", ids
            )
        }
        rows = [by_id[i] for i in ids]
    items = catalog._hydrate(rows)
    if f.matched_words is not None:
        for item in items:  # one statement per recording, as then
            item.transcript_hits = catalog._hits([item.recording_id], f.matched_words).get(
                item.recording_id, []
            )
    following = q.offset + len(items)
    return RecordingPage(
        items=items,
        total=total,
        limit=q.limit,
        offset=q.offset,
        next_offset=following if following < total else None,
    )


_OLD_KEYS: dict[SortField, str] = {
    SortField.STARTED_AT: "r.started_at",
    SortField.DURATION: "COALESCE(r.duration, ? - r.started_at)",
    SortField.FINISHED_AT: "COALESCE(r.finished_at, ?)",
    SortField.ROOM: "COALESCE(r.room_id, '')",
    SortField.PARTICIPANTS: "(SELECT COUNT(*) FROM participants p WHERE p.recording_id = r.recording_id)",
    SortField.BYTES: "r.bytes",
    SortField.STATUS: "r.status",
}


if __name__ == "__main__":
    main()
