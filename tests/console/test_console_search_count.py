"""The console's Recordings page on a catalog above the server's count limit (api.search_count_limit, set
to 10 here): the status and the page line show the total as a lower bound ("51+", "10,000+" with the
default limit), and the last page, reached with Next, shows the exact count."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from console_kit import Service, served, signed_in, synthetic

from recorder.api.models import RecordingStatus

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROWS = 60


@pytest_asyncio.fixture(loop_scope="module")
async def crowded(tmp_path: Path) -> AsyncIterator[Service]:
    async with served(tmp_path, search_count_limit=10) as made:
        catalog = made.api.ctx.catalog

        def fill() -> None:
            for info in synthetic(ROWS, time.time()):
                catalog.upsert_recording(info, RecordingStatus.FINISHED)

        await made.api.ctx.db.run(fill)
        yield made


async def test_a_total_above_the_limit_shows_as_a_lower_bound(crowded: Service, browser: Any) -> None:
    page = await signed_in(browser, crowded, "supervisor")
    status = "document.getElementById('status').textContent"
    info = "document.getElementById('page-info').textContent"
    await page.wait_for_function(f"{status} === '51+ recordings'")  # 50 shown, one more known to exist
    assert await page.inner_text("#page-info") == "1\u201350 of 51+"
    await page.click("#next")
    await page.wait_for_function(f"{info} === '51\u2013{ROWS} of {ROWS}'")  # the last page: exact
    assert await page.inner_text("#status") == f"{ROWS} recordings"
    await page.context.close()
