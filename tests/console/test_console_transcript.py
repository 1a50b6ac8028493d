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
