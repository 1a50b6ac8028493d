"""Delivery to a real aiohttp receiver: outages, order per recording, restarts, give-up, filters, payloads."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from s3_fixture import ACCESS_KEY, PLAIN_BUCKET, SECRET_KEY, MotoServer, free_port

from recorder.manifest import Manifest, Software, StoredObject
from recorder.storage import S3Settings, S3Store
from recorder.webhooks import (
    AttemptReport,
    DeliveryState,
    Dispatcher,
    EventType,
    Outbox,
    RecordingFailed,
    RecordingFinished,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    WebhookEndpoint,
    WebhookEvent,
    WebhookSettings,
    generate_secret,
    presigned_links,
    verify,
)

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


class Receiver:
    """A webhook endpoint: records every request; answers 500 to the first `fail_first` ones."""

    def __init__(self, port: int, fail_first: int = 0) -> None:
        self.port = port
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.changed = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append((headers, body))
        self.changed.set()
        if len(self.requests) <= self.fail_first:
            return web.Response(status=500)
        self.accepted.append((headers, body))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def events(self) -> list[WebhookEvent]:
        return [WebhookEvent.model_validate_json(body) for _, body in self.accepted]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port())
    yield r
    await r.stop()


def settings_for(tmp_path: Path, endpoints: list[WebhookEndpoint], **extra: object) -> WebhookSettings:
    return WebhookSettings.model_validate(
        {
            "endpoints": endpoints,
            "outbox_path": tmp_path / "outbox.sqlite3",
            "retry_initial": 0.05,
            "retry_max": 0.2,
            "poll_interval": 0.05,
            **extra,
        }
    )


def endpoint(port: int, name: str = "crm", types: list[EventType] | None = None) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=name,
        url=f"http://127.0.0.1:{port}/hook",
        secret=generate_secret(),  # type: ignore[arg-type]
        event_types=types,
        timeout=2,
    )


def call_events(recording_id: str) -> list[WebhookEvent]:
    manifest = Manifest(recording_id=recording_id, software=Software(version="0.1.0"), created_at=NOW)
    return [
        WebhookEvent.of(RecordingStarted(recording_id=recording_id, started_at=NOW)),
        WebhookEvent.of(
            RecordingPaused(recording_id=recording_id, paused_at=NOW, by="agent-1", reason="card")
        ),
        WebhookEvent.of(RecordingResumed(recording_id=recording_id, resumed_at=NOW, by="agent-1")),
        WebhookEvent.of(RecordingFinished(recording_id=recording_id, finished_at=NOW, manifest=manifest)),
    ]


async def wait_until(condition: asyncio.Event, check: object, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # type: ignore[operator]
            condition.clear()
            await condition.wait()


async def test_receiver_down_then_up_gets_every_event_in_order(tmp_path: Path, receiver: Receiver) -> None:
    ep = endpoint(receiver.port)
    settings = settings_for(tmp_path, [ep])
    outbox = Outbox(settings.outbox_path)
    dispatcher = Dispatcher(outbox, settings)
    await dispatcher.start()
    try:
        sent: dict[str, list[str]] = {"rec-a": [], "rec-b": []}
        a, b = call_events("rec-a"), call_events("rec-b")
        for ea, eb in zip(a, b, strict=True):
            sent["rec-a"].append(await dispatcher.publish(ea))
            sent["rec-b"].append(await dispatcher.publish(eb))
        await asyncio.sleep(0.4)  # the receiver is down: attempts fail and back off
        async with asyncio.timeout(10):  # at least one by now, unless this machine is loaded
            while not outbox.attempts():  # noqa: ASYNC110 - bounded by the timeout
                await asyncio.sleep(0.05)
        down = outbox.attempts()
        assert down and all(x.status_code is None and x.error for x in down)
        assert {x.msg_id for x in down} <= {sent["rec-a"][0], sent["rec-b"][0]}  # only the heads were tried

        receiver.fail_first = 2  # then it answers 500 twice before it works
        await receiver.start()
        assert await dispatcher.wait_idle(within=10)
    finally:
        await dispatcher.stop()
    secret = ep.secret.get_secret_value()
    received: dict[str, list[str]] = {"rec-a": [], "rec-b": []}
    for headers, body in receiver.accepted:
        verify(secret, headers, body)
        assert headers["content-type"] == "application/json"
        received[json.loads(body)["data"]["recording_id"]].append(headers["webhook-id"])
    assert received == sent
    assert [e.type for e in receiver.events() if e.data.recording_id == "rec-a"] == [
        EventType.RECORDING_STARTED,
        EventType.RECORDING_PAUSED,
        EventType.RECORDING_RESUMED,
        EventType.RECORDING_FINISHED,
    ]
    log = outbox.attempts(recording_id="rec-a")
    assert [x.status_code for x in log if x.msg_id == sent["rec-a"][-1]][-1] == 204
    assert any(x.status_code == 500 for x in outbox.attempts())
    assert all(d.state is DeliveryState.DELIVERED for d in outbox.deliveries())
    outbox.close()


async def test_restart_delivers_pending_outbox(tmp_path: Path, receiver: Receiver) -> None:
    ep = endpoint(receiver.port)
    settings = settings_for(tmp_path, [ep])
    outbox = Outbox(settings.outbox_path)
    first = Dispatcher(outbox, settings)
    await first.start()
    ids = [await first.publish(e) for e in call_events("rec-r")]
    await asyncio.sleep(0.2)
    await first.stop()  # the process stops with everything pending
    outbox.close()

    await receiver.start()
    outbox = Outbox(settings.outbox_path)
    assert outbox.pending_count() == 4
    second = Dispatcher(outbox, settings)
    await second.start()
    try:
        assert await second.wait_idle(within=10)
    finally:
        await second.stop()
    assert [h["webhook-id"] for h, _ in receiver.accepted] == ids
    for headers, body in receiver.accepted:
        verify(ep.secret.get_secret_value(), headers, body)
    outbox.close()


async def test_gives_up_after_max_retry_time_and_unblocks_the_queue(tmp_path: Path) -> None:
    ep = endpoint(free_port())  # nobody listens
    # 2 s from the event's creation: time for a second attempt even when the first one (a thread hop to
    # read the outbox, a refused connection, one to write the attempt) is slow on a loaded machine
    settings = settings_for(tmp_path, [ep], max_retry_seconds=2.0)
    outbox = Outbox(settings.outbox_path)
    dispatcher = Dispatcher(outbox, settings)
    await dispatcher.start()
    try:
        for event in call_events("rec-g")[:2]:
            await dispatcher.publish(event)
        assert await dispatcher.wait_idle(within=10)
    finally:
        await dispatcher.stop()
    deliveries = outbox.deliveries(recording_id="rec-g")
    assert [d.state for d in deliveries] == [DeliveryState.FAILED, DeliveryState.FAILED]
    assert deliveries[0].attempts >= 2 and all(d.attempts >= 1 and d.last_error for d in deliveries)
    outbox.close()


async def test_event_type_filter_per_endpoint(tmp_path: Path, receiver: Receiver) -> None:
    everything = endpoint(receiver.port, "all")
    finished_only = endpoint(
        receiver.port, "finished", [EventType.RECORDING_FINISHED, EventType.RECORDING_FAILED]
    )
    settings = settings_for(tmp_path, [everything, finished_only])
    outbox = Outbox(settings.outbox_path)
    await receiver.start()
    dispatcher = Dispatcher(outbox, settings)
    await dispatcher.start()
    try:
        for event in call_events("rec-f"):
            await dispatcher.publish(event)
        await dispatcher.publish(
            WebhookEvent.of(
                RecordingFailed(recording_id="rec-x", failed_at=NOW, stage="upload", error="disk")
            )
        )
        assert await dispatcher.wait_idle(within=10)
    finally:
        await dispatcher.stop()
    assert len(outbox.deliveries(endpoint_id="all")) == 5
    assert [d.type for d in outbox.deliveries(endpoint_id="finished")] == [
        "recording.finished",
        "recording.failed",
    ]
    assert len(receiver.accepted) == 7
    outbox.close()


def test_recording_finished_carries_manifest_and_expiring_links(moto_server: MotoServer) -> None:
    store = S3Store(
        S3Settings.model_validate(
            {
                "endpoint": moto_server.endpoint,
                "bucket": PLAIN_BUCKET,
                "secure": False,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
            }
        )
    )
    prefix = "2024/05/01/rec-links/"
    put = store.put_bytes(prefix + "video-1.webm", b"media", "video/webm")
    manifest = Manifest(
        recording_id="rec-links",
        software=Software(version="0.1.0"),
        created_at=NOW,
        objects=[
            StoredObject(
                name="video-1.webm", key=put.key, size=put.size, content_type="video/webm", sha256=put.sha256
            )
        ],
    )
    store.put_bytes(prefix + "manifest.json", b"{}")
    store.put_bytes(prefix + "manifest.json.sig", b"sig")
    links = presigned_links(
        store,
        manifest,
        {"manifest.json": prefix + "manifest.json", "manifest.json.sig": prefix + "manifest.json.sig"},
        timedelta(minutes=15),
    )
    event = WebhookEvent.of(
        RecordingFinished(recording_id="rec-links", finished_at=NOW, manifest=manifest, links=links)
    )
    parsed = WebhookEvent.model_validate_json(event.body())
    assert isinstance(parsed.data, RecordingFinished)
    assert parsed.data.manifest == manifest
    assert [link.name for link in parsed.data.links] == ["manifest.json", "manifest.json.sig", "video-1.webm"]
    media = parsed.data.links[2]
    assert "X-Amz-Expires=900" in media.url
    assert timedelta(minutes=14) < media.expires_at - datetime.now(UTC) <= timedelta(minutes=15)
    with urllib.request.urlopen(media.url, timeout=5) as response:
        assert response.read() == b"media"


async def test_listeners_hear_new_events_and_every_attempt(tmp_path: Path, receiver: Receiver) -> None:
    """What the metrics count: each event once when it is stored (not again when a restart publishes it
    under the same id), and each attempt with its outcome, duration and age."""
    settings = settings_for(tmp_path, [endpoint(receiver.port)])
    outbox = Outbox(settings.outbox_path)
    dispatcher = Dispatcher(outbox, settings)
    published: list[WebhookEvent] = []
    reports: list[AttemptReport] = []
    dispatcher.on_published.append(published.append)
    dispatcher.on_attempt.append(reports.append)
    dispatcher.on_attempt.append(lambda report: 1 / 0)  # a failing listener harms nobody
    receiver.fail_first = 1
    await receiver.start()
    await dispatcher.start()
    try:
        (event,) = call_events("rec-l")[:1]
        await dispatcher.publish(event, msg_id="msg_rec-l.started")
        await dispatcher.publish(event, msg_id="msg_rec-l.started")  # a restart publishing it again
        assert await dispatcher.wait_idle(within=10)
    finally:
        await dispatcher.stop()
        outbox.close()
    assert published == [event]
    assert [(r.endpoint_id, r.outcome, r.attempted) for r in reports] == [
        ("crm", DeliveryState.PENDING, True),
        ("crm", DeliveryState.DELIVERED, True),
    ]
    assert all(0 < r.seconds <= r.since_event < 10 and r.event_type == "recording.started" for r in reports)
