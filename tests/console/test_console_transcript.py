"""The recording page shows the recording's transcript beside the players (recorder/console/static/
transcript.js) in a real browser: each line's time moves the players there, and a link with #t=SECONDS
(a search hit) starts them there. The transcript is written into the recorded call's folder as the
service's Transcriber writes it (the model itself is tested in tests/postprocess/transcribe)."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime
from typing import Any

import pytest
from console_kit import Service, signed_in, until

from postprocess.transcribe.models import MASK, RedactionInterval, Segment, Transcript
from postprocess.transcribe.recording import write_transcript
from recorder.api.models import TranscriptHit
from recorder.manifest import MANIFEST_NAME, Manifest
from recorder.recording import RecordingInfo
from recorder.transcripts import originals
from recorder.transcripts.revision import add_to_manifest

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


async def _players(service: Service, browser: Any, rid: str) -> list[tuple[str, str, bool]]:
    """(caption, file, muted) of each player of the recording page."""
    page = await signed_in(browser, service, "supervisor")
    await page.goto(f"{service.base}/console/recordings/{rid}")
    await page.wait_for_selector("#players figure")
    found = await page.eval_on_selector_all(
        "#players figure",
        "fs => fs.map(f => [f.querySelector('figcaption').textContent,"
        " f.querySelector('audio, video').dataset.file, f.querySelector('audio, video').muted])",
    )
    await page.context.close()
    return [(str(c), str(n), bool(m)) for c, n, m in found]


async def test_a_redacted_composite_leads_and_replaces_a_deleted_original(
    service: Service, browser: Any
) -> None:
    """A redacted copy of the composite (recorder/transcripts) is the first player, carrying the sound and
    labelled, the original after it muted and labelled unredacted; once the original is deleted
    (transcripts.keep_original = false) the redacted one stands alone."""
    rid, folder, archive = service.call_id, service.folder, service.archive
    copy = folder / "redacted-1" / "composite.webm"
    copy.parent.mkdir(exist_ok=True)
    await asyncio.to_thread(shutil.copyfile, folder / "composite.webm", copy)
    _, detail = await service.call("GET", f"/v1/recordings/{rid}", role="supervisor")
    info = RecordingInfo(
        recording_id=rid,
        folder=folder,
        room_id=detail["room_id"],
        call_id=detail["call_id"],
        started_at=datetime.fromisoformat(detail["started_at"]).timestamp(),
    )

    async def stored() -> bool:
        return not await asyncio.to_thread(archive.spool.pending_count, rid)

    await asyncio.to_thread(add_to_manifest, archive, info, ["redacted-1/composite.webm"])
    await until(stored, 30, "the redacted copy stored")
    players = await _players(service, browser, rid)
    assert players[:2] == [
        ("Composite — redacted", "redacted-1/composite.webm", False),
        ("Composite — original, unredacted", "composite.webm", True),
    ]
    assert all(muted for _, _, muted in players[2:])  # the participants' tracks: the composite has the mix

    manifest = Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())
    original = manifest.object("composite.webm")
    assert original is not None
    await asyncio.to_thread(originals.revise, archive, info, [original], originals.reason_for("redacted-1"))
    await until(stored, 30, "the revision stored")
    await asyncio.to_thread(originals.purge, archive.store, folder, [original])
    players = await _players(service, browser, rid)
    assert players[0] == ("Composite — redacted (original deleted)", "redacted-1/composite.webm", False)
    assert "composite.webm" not in [name for _, name, _ in players]
