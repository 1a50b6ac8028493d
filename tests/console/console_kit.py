"""What the console tests share: a served `callvault serve` app (control API, console, a real archive on
a local store) holding one finished call of two participants recorded from real VP8 RTP (ffmpeg), with a
composite built by ffmpeg and added through the archive, one room recording live, and synthetic catalog
rows for paging; and headless Debian Chromium (Playwright, no browser download) signed in per role."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_kit import FakeSfu, served_api, service_settings
from chromium import ARGS, executable, unavailable_reason
from media import encode_reference, rtp_sender

from recorder.api.app import ControlApi
from recorder.api.auth import Role
from recorder.api.models import RecordingStatus
from recorder.archive import Archive, ArchiveSettings
from recorder.recording import ParticipantInfo, RecordingInfo
from recorder.service.manager import RecordingManager

CALL_ROOM = "support-1"
LIVE_ROOM = "live-room"
SYNTHETIC = 30


@dataclass
class Service:
    base: str
    http: aiohttp.ClientSession
    api: ControlApi
    manager: RecordingManager
    sfu: FakeSfu
    archive: Archive
    call_id: str = ""
    """Recording id of the finished call."""
    live_id: str = ""
    folder: Path = Path()
    keys: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, role: str = "admin", **kw: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.keys[role]}", **kw.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kw) as r:
            if r.content_type.endswith("json"):
                return r.status, await r.json(content_type=None)
            return r.status, await r.read()

    async def audit(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        status, body = await self.call("GET", f"/v1/audit?limit=1000&{query}", role="auditor")
        assert status == 200, body
        entries: list[dict[str, Any]] = body["entries"]
        return entries


async def until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def composite(folder: Path, tracks: list[str]) -> str:
    """composite.webm: the participants' videos side by side (VP8), as the compositor would lay them."""
    inputs = [arg for t in tracks for arg in ("-i", str(folder / t))]
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *inputs,
         "-filter_complex", f"hstack=inputs={len(tracks)}", "-c:v", "libvpx", "-b:v", "400k",
         "-deadline", "realtime", "-cpu-used", "8", str(folder / "composite.webm")],
        check=True, timeout=120,
    )  # fmt: skip
    return "composite.webm"


def synthetic(n: int, now: float) -> list[RecordingInfo]:
    """Finished recordings for the catalog only (no files): what search pages through."""
    return [
        RecordingInfo(
            recording_id=f"20260101T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-bulk-{i:06x}",
            folder=Path("/nonexistent") / str(i),
            room_id=f"bulk-{i % 50}",
            call_id=f"bulk-call-{i}",
            started_at=now - 86400 - i * 60,
            finished_at=now - 86400 - i * 60 + 30 + i % 600,
            metadata={"queue": "billing" if i % 2 else "sales"},
            participants=[ParticipantInfo(id=f"agent-{i % 40}", display_name=f"Agent {i % 40}")],
        )
        for i in range(n)
    ]


@asynccontextmanager
async def served(tmp: Path, **api: Any) -> AsyncIterator[Service]:
    settings = service_settings(tmp, **api)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    archive = Archive(
        ArchiveSettings.model_validate(
            {"delete_local_after_upload": False, "finish_timeout": 20, "completion_poll": 0.2}
        ),
        settings.data_dir,
    )
    await archive.start()
    try:
        roles = (Role.OPERATOR, Role.SUPERVISOR, Role.AUDITOR)
        async with served_api(settings, [archive], roles=roles) as made:
            assert made.sfu is not None
            yield Service(made.base, made.http, made.api, made.manager, made.sfu, archive, keys=made.keys)
    finally:
        await archive.stop()


async def record_call(service: Service, tmp: Path, seconds: float = 4.0) -> None:
    """A finished call of two participants (real VP8 over RTP), its composite, and a live room."""
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp, seconds)
    await service.sfu.publish(CALL_ROOM, "1001", "Agent Smith")
    await service.sfu.publish(CALL_ROOM, "1002", "Customer Jones")
    service.call_id = service.manager.rooms[CALL_ROOM].info.recording_id
    senders = [rtp_sender(reference, service.sfu.port_of(CALL_ROOM, p)) for p in ("1001", "1002")]
    await asyncio.gather(*(asyncio.to_thread(s.wait, 60) for s in senders))
    status, body = await service.call(
        "PATCH", f"/v1/recordings/{service.call_id}", json={"metadata": {"queue": "billing"}}
    )
    assert status == 200, body
    info = await service.manager.finish_room(CALL_ROOM)
    assert info is not None
    service.folder = info.folder

    async def finished() -> bool:
        _, body = await service.call("GET", f"/v1/recordings/{service.call_id}", role="supervisor")
        return bool(body["status"] == RecordingStatus.FINISHED and body.get("manifest"))

    await until(finished, 30, "the call's manifest")
    _, body = await service.call("GET", f"/v1/recordings/{service.call_id}", role="supervisor")
    tracks = [t["file"] for t in body["manifest"]["tracks"] if t["file"]]
    name = await asyncio.to_thread(composite, info.folder, tracks)
    await service.archive.add_composites(info, [name], [])

    async def composed() -> bool:
        _, body = await service.call("GET", f"/v1/recordings/{service.call_id}/links", role="supervisor")
        return any(f["name"] == name for f in body["files"])

    await until(composed, 30, "the composite stored")
    await service.sfu.publish(LIVE_ROOM, "2001", "Operator Olga")
    service.live_id = service.manager.rooms[LIVE_ROOM].info.recording_id
    rows = synthetic(SYNTHETIC, time.time())
    catalog = service.api.ctx.catalog
    await service.api.ctx.db.run(
        lambda: [catalog.upsert_recording(r, RecordingStatus.FINISHED) for r in rows]
    )


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium through Playwright (skips where it cannot run)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    playwright = await async_playwright().start()
    try:
        browser = await playwright.chromium.launch(
            executable_path=executable(),
            headless=True,
            args=[*ARGS, "--autoplay-policy=no-user-gesture-required"],
            timeout=30_000,
        )
    except PlaywrightError as exc:
        await playwright.stop()
        pytest.skip(f"headless Chromium cannot start here: {str(exc).splitlines()[0]}")
    try:
        yield browser
    finally:
        await browser.close()
        await playwright.stop()


async def signed_in(
    browser: Any, service: Service, role: str, errors: list[str] | None = None, strict: bool = False
) -> Any:
    """A new browser context signed in through the form with `role`'s key; returns its page. The page's
    Content-Security-Policy is enforced only when `strict` (Playwright's wait_for_function evaluates
    strings, which the policy forbids)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=not strict)
    page = await context.new_page()
    if errors is not None:
        page.on("console", lambda m: errors.append(f"{role}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{role}: {e}"))
    await page.goto(service.base + "/console/")
    assert page.url.endswith("/console/sign-in")
    await page.fill("#key", service.keys[role])
    await page.click("button[type=submit]")
    await page.wait_for_selector("#who-role")
    return page
