"""The supervisor console in a real browser (headless Debian Chromium through Playwright): signing in per
role and what each role sees and cannot do (also through a direct request with its cookie), search with
paging and live recordings marked, a recording page playing the composite and the originals in sync,
pause/resume from the live view, the integrity badge turning red after a stored byte is flipped, CSRF
refusals, session expiry and sign-out, the audit entries of views, plays and downloads, axe-core on every
page, no horizontal scroll at laptop and tablet widths, and screenshots of the pages."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from console_kit import CALL_ROOM, LIVE_ROOM, SYNTHETIC, Service, signed_in

from recorder.console.app import COOKIE

pytestmark = pytest.mark.asyncio(loop_scope="module")

CONFIG = "JSON.parse(document.getElementById('console-config').textContent)"
FETCH = """async ([url, method, csrf]) => {
  const headers = csrf === null ? {} : {'X-CSRF-Token': csrf};
  const r = await fetch(url, {method, headers, credentials: 'same-origin'});
  const type = r.headers.get('Content-Type') || '';
  return [r.status, type.includes('json') ? await r.json() : null];
}"""


async def fetch(page: Any, path: str, method: str = "GET", csrf: str | None = "page") -> tuple[int, Any]:
    """A request from the page itself (its cookie, as the browser sends it); csrf 'page': its token."""
    token = await page.evaluate(f"{CONFIG}.csrf") if csrf == "page" else csrf
    status, body = await page.evaluate(FETCH, [path, method, token])
    return int(status), body


async def visible(page: Any, selector: str) -> bool:
    return bool(await page.is_visible(selector))


async def test_roles_see_and_may_do_only_their_part(service: Service, browser: Any) -> None:
    rid = service.call_id
    # supervisor: recordings and live (read-only), verifying a recording and reading its own audit trail
    # (a QA supervisor checks what they review); no hold, delete, pause, start, nor the whole audit log
    page = await signed_in(browser, service, "supervisor")
    assert "/console/recordings" in page.url
    assert await page.inner_text("nav[aria-label=Console]") == "Recordings\nLive"
    await page.goto(f"{service.base}/console/recordings/{rid}")
    await page.wait_for_selector("#players video")
    await page.wait_for_selector("#audit-section tbody tr")
    trail = await page.inner_text("#audit-section tbody")
    assert "recording.view" in trail and "supervisor-1" in trail
    assert await visible(page, "#verify")
    await page.click("#verify")
    await page.wait_for_function("document.getElementById('checked').textContent.endsWith('by supervisor-1')")
    assert await page.inner_text("#badge") == "intact"
    await page.wait_for_function(
        "document.querySelector('#audit-section tbody').textContent.includes('recording.verify')"
    )  # the trail shows the check just made
    assert not await visible(page, "#delete")
    assert not await visible(page, "#hold-section")
    assert await visible(page, "#downloads-section")
    status, _ = await fetch(page, "/console/api/v1/audit")  # the whole log: auditors only
    assert status == 403
    status, _ = await fetch(page, "/console/api/v1/recordings/20260101T000000Z-none/audit")
    assert status == 404
    await page.goto(f"{service.base}/console/live")
    await page.wait_for_selector(f".room[data-room={LIVE_ROOM}]")
    assert await page.locator("#rooms button", has_text="Pause").count() == 0
    assert not await visible(page, "#start-form")
    status, body = await fetch(page, f"/console/api/v1/recordings/{rid}", "DELETE")  # with its CSRF token
    assert status == 403 and body["detail"].startswith("role supervisor may not"), body
    status, _ = await fetch(page, f"/console/api/v1/recordings/{service.live_id}/pause", "POST")
    assert status == 403
    status, _ = await fetch(page, "/console/audit")
    assert status == 403
    await page.context.close()

    # operator: the live view with pause and start/stop; no recording pages
    page = await signed_in(browser, service, "operator")
    assert page.url.endswith("/console/live")
    await page.wait_for_selector(f"button[aria-label='Pause room {LIVE_ROOM}']")
    assert await visible(page, "#start-form")
    response = await page.goto(f"{service.base}/console/recordings/{rid}")
    assert response.status == 403 and "Not for your role" in await page.inner_text("h1")
    status, _ = await fetch(page, "/console/api/v1/recordings")
    assert status == 403
    await page.context.close()

    # auditor: the audit log, and a recording's integrity and trail (no playback, no pause)
    page = await signed_in(browser, service, "auditor")
    assert page.url.endswith("/console/audit")
    await page.wait_for_selector("#audit tbody tr")
    await page.goto(f"{service.base}/console/recordings/{rid}")
    await page.wait_for_selector("#audit-section tbody tr")
    assert await visible(page, "#verify")
    assert not await visible(page, "#players-section")
    assert not await visible(page, "#delete")
    assert await page.locator("button", has_text="Pause").count() == 0
    status, _ = await fetch(page, f"/console/api/v1/recordings/{rid}")
    assert status == 403
    status, _ = await fetch(page, "/console/live")
    assert status == 403
    await page.context.close()

    # admin: legal hold (with a reason) and delete are offered
    page = await signed_in(browser, service, "admin")
    await page.goto(f"{service.base}/console/recordings/{rid}")
    await page.wait_for_selector("#hold-section:not([hidden])")
    assert await visible(page, "#delete")
    await page.click("#hold-place")  # no reason: refused in the page
    assert "needs a reason" in await page.inner_text("#status")
    await page.fill("#hold-reason", "case 4711")
    await page.click("#hold-place")
    await page.wait_for_function("document.getElementById('hold-state').textContent.includes('case 4711')")
    _, detail = await service.call("GET", f"/v1/recordings/{rid}", role="supervisor")
    assert detail["legal_hold"] and detail["legal_hold_reason"] == "case 4711"
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.click("#delete")
    await page.wait_for_function("document.getElementById('status').textContent.includes('legal hold')")
    await page.click("#hold-lift")
    await page.wait_for_function("document.getElementById('hold-state').textContent.startsWith('Not')")
    await page.context.close()

    tried = [e for e in await service.audit(action="recording.delete") if e["detail"].get("via") == "console"]
    assert [(e["actor"], e["outcome"]) for e in tried] == [
        ("supervisor-1", "denied"),
        ("bootstrap-admin", "refused"),  # under legal hold
    ]


async def test_search_filters_pages_and_marks_live(service: Service, browser: Any) -> None:
    page = await signed_in(browser, service, "supervisor")
    await page.wait_for_selector("#results tbody tr")
    total = SYNTHETIC + 2  # the call, the live room, the synthetic rows
    assert await page.inner_text("#status") == f"{total} recordings"
    live = page.locator("#results tbody tr.live")
    assert await live.count() == 1 and "● live" in await live.inner_text()
    await page.select_option("#f-limit", "25")
    await page.click("#search button[type=submit]")
    info = "document.getElementById('page-info').textContent"
    await page.wait_for_function(f"{info} === '1\u201325 of {total}'")
    await page.click("#next")
    await page.wait_for_function(f"{info} === '26\u2013{total} of {total}'")
    assert await page.is_disabled("#next") and not await page.is_disabled("#prev")
    await page.fill("#f-participant", "Customer Jones")
    await page.press("#f-participant", "Enter")  # the keyboard submits
    await page.wait_for_function("document.getElementById('status').textContent === '1 recording'")
    await page.click("#results tbody a")
    await page.wait_for_url(f"**/console/recordings/{service.call_id}")
    await page.go_back()
    await page.wait_for_function("document.getElementById('status').textContent === '1 recording'")
    assert await page.input_value("#f-participant") == "Customer Jones"  # the search is in the address
    await page.fill("#f-participant", "")
    await page.fill("#f-tag", "queue:billing")
    await page.fill("#f-room", CALL_ROOM)
    await page.click("#search button[type=submit]")
    await page.wait_for_function("document.getElementById('status').textContent === '1 recording'")
    await page.fill("#f-room", "no-such-room")
    await page.click("#search button[type=submit]")
    await page.wait_for_function("document.getElementById('status').textContent === 'No recording matches.'")
    await page.context.close()


ROW_IDS = "[...document.querySelectorAll('#results tbody a')].map(a => a.getAttribute('href'))"


async def rows_are(page: Any, ids: list[str]) -> None:
    hrefs = [f"/console/recordings/{i}" for i in ids]
    same = json.dumps(json.dumps(hrefs, separators=(",", ":")))
    await page.wait_for_function(f"JSON.stringify({ROW_IDS}) === {same}")


async def test_column_sorting_is_server_side_and_pages_on(service: Service, browser: Any) -> None:
    page = await signed_in(browser, service, "supervisor")
    await page.wait_for_selector("#results tbody tr")
    await page.select_option("#f-limit", "25")
    await page.select_option("#f-status", "finished")  # the live one's duration grows meanwhile
    await page.click("#search button[type=submit]")
    await page.wait_for_function("document.getElementById('page-info').textContent.startsWith('1\u201325 ')")
    header = "#results th[data-sort=duration]"
    await page.focus(f"{header} button")
    await page.keyboard.press("Enter")  # keyboard: the header is a button
    await page.wait_for_function(f"document.querySelector('{header}').ariaSort === 'descending'")
    _, whole = await service.call(
        "GET", "/v1/recordings?status=finished&sort=duration&order=desc&limit=200", role="supervisor"
    )
    expected = [i["recording_id"] for i in whole["items"]]
    assert len(expected) == SYNTHETIC + 1
    durations = [i["duration"] for i in whole["items"]]
    assert durations == sorted(durations, reverse=True)
    await rows_are(page, expected[:25])  # the longest of all, not of the page shown before
    assert "sort=duration" in page.url and "order=desc" in page.url  # bookmarkable
    await page.click("#next")  # the next page continues the whole result's order
    await rows_are(page, expected[25:])
    await page.click(f"{header} button")  # again: ascending, from the first page
    await page.wait_for_function(f"document.querySelector('{header}').ariaSort === 'ascending'")
    await rows_are(page, list(reversed(expected))[:25])
    assert await page.input_value("#f-sort") == "duration" and await page.input_value("#f-order") == "asc"
    await page.context.close()


JS_TIMES = """() => consoleSync.players.map(p => [p.media.dataset.file, p.media.currentTime, p.offset,
                                                 p.media.readyState, p.media.paused])"""


async def test_recording_plays_in_sync(service: Service, browser: Any) -> None:
    errors: list[str] = []
    before = (await service.audit())[-1]["seq"]
    page = await signed_in(browser, service, "supervisor", errors)
    await page.goto(f"{service.base}/console/recordings/{service.call_id}")
    await page.wait_for_function(
        "window.consoleSync && consoleSync.players.every(p => p.media.readyState >= 2)"
    )
    files = [t[0] for t in await page.evaluate(JS_TIMES)]
    assert files[0] == "composite.webm" and sorted(files[1:]) == ["1001-video-0.webm", "1002-video-0.webm"]
    events = await page.inner_text("#timeline")
    assert "Agent Smith joined" in events and "Customer Jones left" in events
    await page.click("#play")
    await page.wait_for_function("consoleSync.players.every(p => p.media.currentTime > 0.5)", timeout=15_000)
    assert await page.inner_text("#play") == "Pause"

    def spread(times: list[list[Any]]) -> float:
        positions = [t[1] + t[2] for t in times]  # where each player is on the call's timeline
        return max(positions) - min(positions)

    # seek one participant's own player: every player follows
    await page.evaluate("() => { consoleSync.players[2].media.currentTime = 0.4; }")
    await page.wait_for_function(
        "consoleSync.players.every(p => !p.media.seeking) && consoleSync.position < 1.5"
        " && Math.max(...consoleSync.players.map(p => p.media.currentTime + p.offset))"
        " - Math.min(...consoleSync.players.map(p => p.media.currentTime + p.offset)) < 0.1"
    )
    times = await page.evaluate(JS_TIMES)
    assert spread(times) < 0.1, times
    await page.wait_for_function("consoleSync.players.every(p => p.media.currentTime > 1.0)")
    for _ in range(5):  # playing on, they stay together
        times = await page.evaluate(JS_TIMES)
        if not any(t[4] for t in times):
            assert spread(times) < 0.1, times
        await page.wait_for_timeout(100)
    await page.click("#play")
    await page.wait_for_function("consoleSync.players.every(p => p.media.paused)")

    # the transport's slider seeks all
    await page.evaluate("() => { const s = document.getElementById('seek'); s.value = '2';"
                        " s.dispatchEvent(new Event('input')); }")  # fmt: skip
    await page.wait_for_function(
        "consoleSync.players.every(p => Math.abs(p.media.currentTime + p.offset - 2) < 0.1)"
    )
    # a download from the page
    async with page.expect_download() as download_info:
        await page.click("#downloads a[download='1001-video-0.webm']")
    download = await download_info.value
    got, original = Path(await download.path()), service.folder / "1001-video-0.webm"
    assert await asyncio.to_thread(got.read_bytes) == await asyncio.to_thread(original.read_bytes)
    assert errors == []
    await page.context.close()

    entries = await service.audit(target=service.call_id, after=str(before))
    plays = sorted(e["detail"]["file"] for e in entries if e["action"] == "recording.play")
    assert plays == ["1001-video-0.webm", "1002-video-0.webm", "composite.webm"]  # once each, not per range
    assert all(e["detail"]["via"] == "console" for e in entries if e["action"].startswith("recording.p"))
    downloads = [e["detail"]["file"] for e in entries if e["action"] == "recording.download"]
    assert "1001-video-0.webm" in downloads
    assert any(e["action"] == "recording.view" and e["detail"].get("via") == "console" for e in entries)


async def test_pause_and_resume_from_the_live_view(service: Service, browser: Any) -> None:
    page = await signed_in(browser, service, "operator")
    pause = f"button[aria-label='Pause room {LIVE_ROOM}']"
    await page.wait_for_selector(pause)
    assert await page.locator(f".room[data-room={LIVE_ROOM}] tbody tr").count() == 1  # its one track
    prompts: list[str] = []
    page.on("dialog", lambda d: prompts.append(d.message))  # no window.prompt/confirm on the way
    await page.focus(pause)
    await page.keyboard.press("Enter")  # keyboard only: the dialog takes the focus
    await page.wait_for_selector("#pause-dialog[open]")
    assert await page.evaluate("document.activeElement.id") == "pause-reason"
    assert f"Pause room {LIVE_ROOM}" in await page.inner_text("#pause-h")
    await page.keyboard.press("Enter")  # no reason: refused in the dialog, nothing paused
    assert "needs a reason" in await page.inner_text("#pause-error")
    assert await page.is_visible("#pause-dialog") and service.manager.rooms[LIVE_ROOM].paused is None
    await page.keyboard.press("Escape")  # cancelled: nothing paused, the focus back on the button
    await page.wait_for_selector("#pause-dialog:not([open])", state="attached")
    await page.wait_for_function(
        f"document.activeElement.getAttribute('aria-label') === 'Pause room {LIVE_ROOM}'"
    )
    assert service.manager.rooms[LIVE_ROOM].paused is None
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#pause-dialog[open]")
    await page.keyboard.type("customer reads a card number")
    await page.keyboard.press("Enter")
    await page.wait_for_selector(f"button[aria-label='Resume room {LIVE_ROOM}']")
    assert prompts == []
    assert service.manager.rooms[LIVE_ROOM].paused == ("operator-1", "customer reads a card number")
    await page.click(f"button[aria-label='Resume room {LIVE_ROOM}']")
    await page.wait_for_selector(pause)
    assert service.manager.rooms[LIVE_ROOM].paused is None
    await page.context.close()
    entries = [e for e in await service.audit(target=service.live_id) if e["outcome"] == "ok"]
    assert [(e["action"], e["detail"].get("reason")) for e in entries] == [
        ("recording.pause", "customer reads a card number"),
        ("recording.resume", None),
    ]


async def test_csrf_expiry_and_sign_out(service: Service, browser: Any) -> None:
    rid = service.call_id
    page = await signed_in(browser, service, "admin")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert cookie["expires"] > time.time() + 3600
    status, body = await fetch(page, f"/console/api/v1/recordings/{rid}/verify", "POST", csrf=None)
    assert status == 403 and "CSRF" in body["detail"], body
    status, body = await fetch(page, f"/console/api/v1/recordings/{rid}/verify", "POST", csrf="forged")
    assert status == 403, body
    jar = {COOKIE: cookie["value"]}
    async with aiohttp.ClientSession(cookies=jar) as http:  # another site posting with the cookie
        token = await page.evaluate(f"{CONFIG}.csrf")
        headers = {"X-CSRF-Token": token, "Origin": "https://evil.example"}
        async with http.post(f"{service.base}/console/api/v1/recordings/{rid}/verify", headers=headers) as r:
            assert r.status == 403
        async with http.post(f"{service.base}/console/sign-out", data={"csrf": "x"}) as r:
            assert r.status == 403  # no sign-out without the page's token
    status, body = await fetch(page, f"/console/api/v1/recordings/{rid}/verify", "POST")
    assert status == 200 and body["ok"], body
    # every refusal is in the audit log: who (the session's key), what was tried, why; nothing done
    refused = await service.audit(action="console.csrf_refused")
    assert [(e["actor"], e["target"], e["outcome"], e["detail"]["reason"], e["detail"]["request"])
            for e in refused[-4:]] == [
        ("bootstrap-admin", rid, "denied", "token", "POST /v1/recordings/{recording_id}/verify"),
        ("bootstrap-admin", rid, "denied", "token", "POST /v1/recordings/{recording_id}/verify"),
        ("bootstrap-admin", rid, "denied", "origin", "POST /v1/recordings/{recording_id}/verify"),
        ("bootstrap-admin", None, "denied", "token", "POST /console/sign-out"),
    ]  # fmt: skip
    verified = [e for e in await service.audit(action="recording.verify", target=rid)
                if e["actor"] == "bootstrap-admin"]  # fmt: skip
    assert [e["outcome"] for e in verified][-1:] == ["ok"] and len(verified) == 1  # only the real one

    sessions = service.api.console.sessions if service.api.console else None
    assert sessions is not None
    clock = sessions.clock
    sessions.clock = lambda: clock() + sessions.lifetime + 1  # the sign-in's lifetime has passed
    try:
        await page.goto(f"{service.base}/console/recordings")
        assert page.url.endswith("/console/sign-in")
    finally:
        sessions.clock = clock
    page = await signed_in(browser, service, "admin")
    (cookie,) = [c for c in await page.context.cookies() if c["name"] == COOKIE]
    await page.click("text=Sign out")
    await page.wait_for_url("**/console/sign-in")
    assert [c for c in await page.context.cookies() if c["name"] == COOKIE] == []
    async with (
        aiohttp.ClientSession(cookies={COOKIE: cookie["value"]}) as http,  # the old cookie is dead
        http.get(f"{service.base}/console/api/v1/recordings") as r,
    ):
        assert r.status == 401
    await page.context.close()
    actions = [e["action"] for e in await service.audit() if e["action"].startswith("console.")]
    assert "console.sign_in" in actions and actions[-1] == "console.sign_out"


async def test_pages_accessible_and_fit(service: Service, browser: Any, shots: Path) -> None:
    from axe_playwright_python.async_playwright import Axe

    axe = Axe()
    errors: list[str] = []
    page = await signed_in(browser, service, "admin", errors, strict=True)  # no CSP violation either
    pages = {
        "search": ("/console/recordings", "#results tbody tr"),
        "recording": (f"/console/recordings/{service.call_id}", "#audit-section tbody tr"),
        "live": ("/console/live", f".room[data-room={LIVE_ROOM}] tbody tr"),
        "audit": ("/console/audit", "#audit tbody tr"),
    }
    for width in (1280, 768):
        await page.set_viewport_size({"width": width, "height": 900})
        for name, (path, ready) in pages.items():
            await page.goto(service.base + path)
            await page.wait_for_selector(ready)
            await page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways at {width} px"
            if width == 1280:
                results = await axe.run(page)
                assert results.violations_count == 0, f"{name}: {results.generate_report()}"
    await page.set_viewport_size({"width": 1280, "height": 900})  # the pause dialog, open
    await page.goto(service.base + "/console/live")
    await page.click(f"button[aria-label='Pause room {LIVE_ROOM}']")
    await page.wait_for_selector("#pause-dialog[open]")
    await page.screenshot(path=str(shots / "pause-dialog-1280.png"))
    results = await axe.run(page)
    assert results.violations_count == 0, f"pause dialog: {results.generate_report()}"
    await page.keyboard.press("Escape")
    await page.context.close()
    page = await browser.new_page()
    await page.goto(service.base + "/console/sign-in")
    results = await axe.run(page)
    assert results.violations_count == 0, results.generate_report()
    await page.screenshot(path=str(shots / "sign-in.png"))
    await page.close()
    assert errors == []
    print(f"screenshots: {shots}")


async def test_integrity_badge_turns_red_after_a_flipped_byte(service: Service, browser: Any) -> None:
    page = await signed_in(browser, service, "auditor")
    await page.goto(f"{service.base}/console/recordings/{service.call_id}")
    await page.click("#verify")
    await page.wait_for_function("document.getElementById('checked').textContent.endsWith('by auditor-1')")
    assert await page.inner_text("#badge") == "intact"
    segment = service.folder / "1001-video-0.segments" / "000002.webm"
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01
    segment.write_bytes(bytes(data))
    await page.click("#verify")
    await page.wait_for_selector("#badge.bad")
    assert await page.inner_text("#badge") == "NOT intact"
    assert "000002.webm" in await page.inner_text("#problems")
    await page.reload()  # the last result is remembered (from the audit log)
    await page.wait_for_selector("#badge.bad")
    await page.context.close()


async def test_console_off(tmp_path: Path) -> None:
    from console_kit import served

    async with served(tmp_path, console=False) as service:
        async with service.http.get(service.base + "/console/") as r:
            assert r.status == 404
        status, _ = await service.call("GET", "/v1/recordings", role="supervisor")
        assert status == 200


async def test_slow_and_failing_api_show_loading_and_errors(service: Service, browser: Any) -> None:
    """The page says it is searching while the API is slow, and says what went wrong when it fails."""
    page = await signed_in(browser, service, "supervisor")
    await page.wait_for_selector("#results tbody tr")
    release = asyncio.Event()

    async def slow_then_fail(route: Any) -> None:
        await release.wait()
        await route.fulfill(
            status=503,
            content_type="application/problem+json",
            body='{"title": "Service Unavailable", "status": 503, "detail": "the catalog is busy"}',
        )

    await page.route("**/console/api/v1/recordings?*", slow_then_fail)
    await page.fill("#f-room", CALL_ROOM)
    await page.click("#search button[type=submit]")
    await page.wait_for_function("document.getElementById('status').textContent === 'Searching…'")
    assert await page.get_attribute("#search", "aria-busy") == "true"
    release.set()
    await page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert await page.inner_text("#status") == "Error 503: the catalog is busy"
    assert await page.get_attribute("#search", "aria-busy") is None
    await page.unroute("**/console/api/v1/recordings?*")
    await page.click("#search button[type=submit]")
    await page.wait_for_function("document.getElementById('status').textContent === '1 recording'")
    await page.context.close()
