"""GET /v1/recordings?sort=&order=: server-side sorting by every offered field, stable across pages
(ties broken by recording id, so paging never repeats or skips a recording), and one clear 422 for an
unknown field or order."""

from __future__ import annotations

import time

from api_kit import Api
from search_kit import Row, fill

NOW = time.time()
# (id suffix, room, started (s ago), duration (None: live), participants, bytes)
ROWS: list[Row] = [
    ("a", "room-b", 500, 30.0, 1, 700),
    ("b", "room-a", 400, 90.0, 3, 100),
    ("c", None, 300, None, 2, 400),
    ("d", "room-c", 200, 10.0, 2, 400),  # same bytes and participants as c: a tie broken by id
    ("e", "room-a", 100, 60.0, 1, 0),
]


def _fill(api: Api) -> None:
    fill(api.api.ctx.catalog, ROWS, "20260101T000000Z-sort-", NOW)


async def _order(api: Api, query: str) -> list[str]:
    status, page = await api.call("GET", f"/v1/recordings?{query}", role="supervisor")
    assert status == 200, page
    return [i["recording_id"].rsplit("-", 1)[1] for i in page["items"]]


async def test_every_sort_field_both_ways(api: Api) -> None:
    await api.api.ctx.db.run(lambda: _fill(api))
    assert await _order(api, "") == list("edcba")  # default: newest first
    expected = {
        "started_at": "abcde",
        "finished_at": "abdec",  # the live one counts as finishing now
        "duration": "daebc",  # c is live: 300 s so far
        "room": "cbead",  # no room sorts first; ties by id
        "participants": "aecdb",
        "bytes": "ebcda",
        "status": "abdec",  # finished < recording; ties by id
    }
    for field, order in expected.items():
        assert await _order(api, f"sort={field}&order=asc") == list(order), field
        assert await _order(api, f"sort={field}&order=desc") == list(reversed(order)), field


async def test_pages_of_a_sorted_query_neither_repeat_nor_skip(api: Api) -> None:
    await api.api.ctx.db.run(lambda: _fill(api))
    for field in ("bytes", "participants", "room"):
        seen: list[str] = []
        offset: int | None = 0
        while offset is not None:
            status, page = await api.call(
                "GET", f"/v1/recordings?sort={field}&order=asc&limit=2&offset={offset}", role="supervisor"
            )
            assert status == 200 and page["total"] == len(ROWS)
            seen += [i["recording_id"] for i in page["items"]]
            offset = page["next_offset"]
        assert len(seen) == len(set(seen)) == len(ROWS), field
        assert seen == [f"20260101T000000Z-sort-{s}" for s in await _order(api, f"sort={field}&order=asc")]


async def test_unknown_sort_field_or_order_is_one_clear_422(api: Api) -> None:
    status, p = await api.call("GET", "/v1/recordings?sort=colour", role="supervisor")
    assert status == 422 and p["invalid-params"][0]["name"] == "query.sort"
    assert "started_at" in p["detail"] and "bytes" in p["detail"]  # says what is allowed
    status, p = await api.call("GET", "/v1/recordings?sort=room;DROP TABLE recordings", role="supervisor")
    assert status == 422 and p["invalid-params"][0]["name"] == "query.sort"
    status, p = await api.call("GET", "/v1/recordings?sort=room&order=sideways", role="supervisor")
    assert status == 422 and p["invalid-params"][0]["name"] == "query.order"
    status, _ = await api.call("GET", "/v1/recordings?sort=room", role="supervisor")
    assert status == 200  # the catalog is still there
