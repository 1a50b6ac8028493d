"""GET /v1/recordings on a catalog larger than the count limit (api.search_count_limit, set low here): the
total is then a flagged lower bound (`total_exact: false`) and paging by next_offset still reaches every
match once; below the limit, or with a filter narrowing the matches below it, the total is exact. The sorts
read indexed keys (migration 0008): the same orders on both backends, the live recording counted as
finishing now, and the participants sort follows participants who join later. Each test on SQLite and on
PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from api_kit import Api, ApiFactory
from postgres_kit import BACKENDS
from search_kit import Row, fill

from recorder.api.catalog import Catalog
from recorder.api.models import SearchQuery
from recorder.recording import ParticipantInfo

pytestmark = BACKENDS

LIMIT = 5
NOW = time.time()
# (id suffix, room, started (s ago), duration (None: live), participants, bytes)
ROWS: list[Row] = [
    ("a", "room-b", 700, 30.0, 1, 700),
    ("b", "room-a", 600, 90.0, 3, 100),
    ("c", None, 500, None, 2, 400),  # live: 500 s so far, finishing "now"
    ("d", "room-c", 400, 10.0, 2, 400),  # same bytes and participants as c: ties broken by id
    ("e", "room-a", 300, 60.0, 1, 0),
    ("f", "room-b", 200, 20.0, 0, 50),
    ("g", "room-a", 100, 45.0, 4, 900),
]
EXPECTED = {  # ascending; descending is the reverse (ties by recording id, in the same order)
    "started_at": "abcdefg",
    "finished_at": "abdefgc",
    "duration": "dfagebc",
    "room": "cbegafd",
    "participants": "faecdbg",
    "bytes": "efbcdag",
    "status": "abdefgc",  # finished < recording
}


def _id(suffix: str) -> str:
    return f"20260101T000000Z-count-{suffix}"


def _fill(api: Api) -> None:
    fill(api.api.ctx.catalog, ROWS, _id(""), NOW)


async def _filled(make_api: ApiFactory) -> Api:
    api = await make_api(search_count_limit=LIMIT)
    await api.api.ctx.db.run(lambda: _fill(api))
    return api


async def _page(api: Api, query: str) -> dict[str, Any]:
    status, page = await api.call("GET", f"/v1/recordings?{query}", role="supervisor")
    assert status == 200, page
    assert isinstance(page, dict)
    return page


def _suffixes(page: dict[str, Any]) -> str:
    return "".join(i["recording_id"].rsplit("-", 1)[1] for i in page["items"])


async def test_above_the_limit_the_total_is_a_flagged_lower_bound(make_api: ApiFactory) -> None:
    api = await _filled(make_api)
    first = await _page(api, "limit=2")
    assert first["total_exact"] is False and LIMIT <= first["total"] <= len(ROWS)
    assert _suffixes(first) == "gf" and first["next_offset"] == 2
    seen, offset = "", 0
    while True:  # next_offset alone walks every match once, the count notwithstanding
        page = await _page(api, f"limit=2&offset={offset}")
        seen += _suffixes(page)
        if page["next_offset"] is None:  # the last page knows the total
            assert (page["total"], page["total_exact"]) == (len(ROWS), True)
            break
        assert page["total_exact"] is False and page["total"] >= max(LIMIT, offset + 3)
        offset = page["next_offset"]
    assert seen == "gfedcba"
    beyond = await _page(api, "limit=2&offset=50")  # past the last match: no page, the bound unchanged
    assert beyond["items"] == [] and beyond["next_offset"] is None
    assert beyond["total"] == LIMIT and beyond["total_exact"] is False


async def test_at_or_below_the_limit_the_total_is_exact(make_api: ApiFactory) -> None:
    api = await _filled(make_api)
    room_a = await _page(api, "room=room-a")  # 3 match
    assert (room_a["total"], room_a["total_exact"], _suffixes(room_a)) == (3, True, "geb")
    finished = await _page(api, "status=finished&started_after=" + _rfc3339(NOW - 650))  # b d e f g
    assert (finished["total"], finished["total_exact"], finished["next_offset"]) == (LIMIT, True, None)
    none = await _page(api, "room=room-z")
    assert (none["total"], none["total_exact"], none["items"]) == (0, True, [])
    unlimited = Catalog(api.api.ctx.db, count_limit=0)  # api.search_count_limit 0: always exact
    everything = await api.api.ctx.db.run(lambda: unlimited.search(SearchQuery(limit=2)))
    assert (everything.total, everything.total_exact, everything.next_offset) == (7, True, 2)


async def test_every_sort_on_its_index_both_ways_and_the_count_follows_joins(make_api: ApiFactory) -> None:
    api = await _filled(make_api)
    for field, order in EXPECTED.items():
        ascending = await _page(api, f"sort={field}&order=asc")
        assert _suffixes(ascending) == order, field
        descending = await _page(api, f"sort={field}&order=desc&limit=3&offset=2")  # a page inside
        assert _suffixes(descending) == order[::-1][2:5], field
    catalog = api.api.ctx.catalog
    for i in range(3):  # two people join the call with none so far, one of them twice (no double count)
        await api.api.ctx.db.run(
            lambda i=i: catalog.upsert_participant(_id("f"), ParticipantInfo(id=f"late{min(i, 1)}"))
        )
    assert _suffixes(await _page(api, "sort=participants&order=asc")) == "aecdfbg"


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
