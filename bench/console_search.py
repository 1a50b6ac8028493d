"""Console search benchmark: the searches the console's Recordings page makes, on a catalog of N
recordings (default 100,000; 2 participants and 2 tags each, 1 in 1,000 live), through the real stack:
`callvault serve`'s app with the control API and the console, a signed-in console session, HTTP on
127.0.0.1, the API's search handler and the SQLite catalog. Prints the median and 95th percentile of each
query's latency (including JSON of a 50-row page) and the SQLite query plan of the slowest.

    .venv/bin/python bench/console_search.py [--recordings 100000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
# The repository first (tests/recorder would otherwise shadow the package), tests/ last: janus_fixture,
# which api_kit's service_kit needs.
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "helpers"), str(ROOT / "tests" / "api")]
sys.path.append(str(ROOT / "tests"))
from api_kit import ADMIN_KEY, service_settings  # noqa: E402

from recorder.api.app import ControlApi  # noqa: E402
from recorder.api.models import RecordingStatus  # noqa: E402
from recorder.api.site import HttpSite  # noqa: E402
from recorder.recording import ParticipantInfo, RecordingInfo  # noqa: E402
from recorder.service.app import build_app  # noqa: E402
from recorder.service.manager import RecordingManager  # noqa: E402

ROOMS = 500
AGENTS = 300
DAY = 86400.0


def fill(api: ControlApi, n: int, now: float) -> None:
    """(database thread) n recordings over the last 90 days, inserted as the catalog sink would."""
    catalog = api.ctx.catalog
    db = api.ctx.db.connection
    db.execute("BEGIN")
    for i in range(n):
        started = now - (n - i) * (90 * DAY / n)
        live = i % 1000 == 999
        info = RecordingInfo(
            recording_id=f"20260101T000000Z-bench-{i:08x}",
            folder=Path("/nonexistent") / str(i),
            room_id=f"room-{i % ROOMS}",
            call_id=f"call-{i}",
            started_at=started,
            finished_at=None if live else started + 60 + (i * 37) % 1800,
            metadata={"queue": ("billing", "sales", "support")[i % 3], "lang": ("en", "de")[i % 2]},
            participants=[
                ParticipantInfo(id=f"agent-{i % AGENTS}", display_name=f"Agent {i % AGENTS}"),
                ParticipantInfo(id=f"cust-{i}", display_name=f"Customer {i}"),
            ],
        )
        catalog.upsert_recording(info, RecordingStatus.RECORDING if live else RecordingStatus.FINISHED)
        catalog.add_bytes(info.recording_id, (i * 7919) % 50_000_000)
    db.execute("COMMIT")


def queries(n: int, now: float) -> dict[str, dict[str, str]]:
    week = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 7 * DAY))
    return {
        "first page (newest)": {},
        "room": {"room": "room-42"},
        "participant (agent)": {"participant": "Agent 7"},
        "participant (one customer)": {"participant": f"cust-{n // 2}"},
        "call id": {"call_id": f"call-{n // 3}"},
        "tag queue:billing": {"tag": "queue:billing"},
        "two tags": {"tag": ["queue:billing", "lang:de"]},
        "status recording (live)": {"status": "recording"},
        "last 7 days": {"started_after": week},
        "duration >= 25 min": {"min_duration": "1500"},
        "room + 7 days + tag": {"room": "room-42", "started_after": week, "tag": "queue:sales"},
        "page 100 (offset 4950)": {"offset": "4950"},
        "sort started_at asc": {"sort": "started_at", "order": "asc"},
        "sort duration desc": {"sort": "duration"},
        "sort duration asc, page 100": {"sort": "duration", "order": "asc", "offset": "4950"},
        "sort bytes desc": {"sort": "bytes"},
        "sort room asc": {"sort": "room", "order": "asc"},
        "sort participants desc": {"sort": "participants"},
        "sort finished_at desc": {"sort": "finished_at"},
        "room, sort duration": {"room": "room-42", "sort": "duration"},
        "tag queue:billing, sort bytes": {"tag": "queue:billing", "sort": "bytes"},
    }


async def main(n: int, repeat: int, lifecycle: bool | None, only: str = "") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = service_settings(Path(tmp))
        if lifecycle is not None:  # its passes share the catalog's one database thread with the searches
            settings = settings.model_copy(
                update={"lifecycle": settings.lifecycle.model_copy(update={"enabled": lifecycle})}
            )
        settings.data_dir.mkdir(parents=True)
        manager = RecordingManager(settings, [])
        app = build_app(manager, [], {})
        api = await ControlApi.open(settings, manager)
        api.mount(app)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        site = HttpSite(runner, "127.0.0.1", 0, settings.api)
        await site.start()
        base = f"http://127.0.0.1:{site.port}"
        now = time.time()
        started = time.perf_counter()
        await api.ctx.db.run(lambda: fill(api, n, now))
        print(f"catalogued {n} recordings in {time.perf_counter() - started:.1f} s")
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # an IP
                async with http.post(f"{base}/console/sign-in", data={"key": ADMIN_KEY}) as r:
                    assert r.status == 200, r.status  # followed to the recordings page
                print(f"{'query':<28} {'total':>7} {'median ms':>10} {'p95 ms':>8}")
                slowest: tuple[float, str, dict[str, str]] = (0.0, "", {})
                for name, params in queries(n, now).items():
                    if only not in name:
                        continue
                    url = f"{base}/console/api/v1/recordings?" + urlencode(
                        {"limit": "50", **params}, doseq=True
                    )
                    times = []
                    total = 0
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        async with http.get(url) as r:
                            body = await r.json()
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status == 200, body
                        total = body["total"]
                    median = statistics.median(times)
                    p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
                    print(f"{name:<28} {total:>7} {median:>10.1f} {p95:>8.1f}")
                    if median > slowest[0]:
                        slowest = (median, name, params)
                print(f"slowest: {slowest[1]}")
        finally:
            await runner.cleanup()
            await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", default="", help="run only the queries whose name contains this")
    parser.add_argument(
        "--lifecycle",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="run the records lifecycle beside the searches (default: off, the searches alone)",
    )
    args = parser.parse_args()
    asyncio.run(main(args.recordings, args.repeat, args.lifecycle, args.only))
