"""The recording page shows the recording's transcript beside the players (recorder/console/static/
transcript.js) in a real browser: each line's time moves the players there, and a link with #t=SECONDS
(a search hit) starts them there. The transcript is written into the recorded call's folder as the
service's Transcriber writes it (the model itself is tested in tests/postprocess/transcribe)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from console_kit import Service, signed_in

from postprocess.transcribe.models import MASK, RedactionInterval, Segment, Transcript
from postprocess.transcribe.recording import write_transcript
from recorder.api.models import TranscriptHit

pytestmark = pytest.mark.asyncio(loop_scope="module")

POSITION = "window.consoleSync ? window.consoleSync.position : -1"


def _transcript(rid: str) -> Transcript:
    return Transcript(
        recording=rid,
        model="tiny.en",
        segments=[
            Segment(
                speaker="1001",
                track="1001-video-0",
                start=0.4,
                end=1.2,
                text=" Acme support.",
                confidence=0.9,
            ),
            Segment(
                speaker="1002",
                track="1002-video-0",
                start=2.5,
                end=3.4,
                text=f" My card is {MASK}.",
                confidence=0.8,
            ),
        ],
        redactions=[RedactionInterval(start=2.9, end=3.4, reason="card-number", rule="auto")],
    )


async def test_transcript_beside_the_players_with_clickable_times(service: Service, browser: Any) -> None:
    rid = service.call_id
    await asyncio.to_thread(write_transcript, service.folder, _transcript(rid))
    page = await signed_in(browser, service, "supervisor")
    await page.goto(f"{service.base}/console/recordings/{rid}#t=2")
    await page.wait_for_selector("#transcript li button")
    lines = await page.locator("#transcript li").all_inner_texts()
    assert lines == ["0:00 1001: Acme support.", f"0:03 1002: My card is {MASK}."]
    assert "1 interval redacted" in await page.inner_text("#transcript-section")
    await page.wait_for_function(f"Math.abs(({POSITION}) - 2) < 0.3")  # the search hit's moment
    await page.locator("#transcript li button").nth(1).click()
    await page.wait_for_function(f"Math.abs(({POSITION}) - 2.5) < 0.3")
    await page.context.close()


async def test_search_by_words_spoken_links_to_the_moment(service: Service, browser: Any) -> None:
    """The search form's "Words spoken" field is the API's q=: each matching transcript segment is listed
    under its recording's row, with a link that opens the recording at that second."""
    from axe_playwright_python.async_playwright import Axe

    rid = service.call_id
    hits = [TranscriptHit(speaker=seg.speaker, start=seg.start, end=seg.end, text=seg.text)
            for seg in _transcript(rid).segments]  # fmt: skip
    catalog = service.api.ctx.catalog
    await service.api.ctx.db.run(lambda: catalog.index_transcript(rid, hits))
    errors: list[str] = []
    page = await signed_in(browser, service, "supervisor", errors)
    await page.fill("#f-q", "acme support")
    await page.click("#search button[type=submit]")
    link = page.locator("#results .hits a")
    await link.first.wait_for()
    assert await link.count() == 1  # one segment said it: the other recordings have no transcript
    assert await link.first.get_attribute("href") == f"/console/recordings/{rid}#t=0"
    assert "Acme support." in await page.inner_text("#results .hits")
    assert "q=acme+support" in page.url  # the search can be bookmarked
    results = await Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
    await link.first.click()
    await page.wait_for_selector("#transcript li button")
    await page.wait_for_function(f"Math.abs(({POSITION}) - 0) < 0.3")
    assert errors == []
    await page.context.close()
