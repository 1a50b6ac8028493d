"""Event intake endpoints (sampleevh over HTTP, wsevh over WebSocket) with an aiohttp test client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer

from janus_bridge import events as ev
from janus_bridge.intake import WSEVH_SUBPROTOCOL, EventIntake

FIXTURES = Path(__file__).parent / "fixtures"
PUBLISHED = json.loads((FIXTURES / "evh_plugin_published.json").read_text())
UNPUBLISHED = json.loads((FIXTURES / "evh_plugin_unpublished.json").read_text())


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[ev.JanusEvent]] = []

    async def __call__(self, events: list[ev.JanusEvent]) -> None:
        self.batches.append(events)

    @property
    def events(self) -> list[ev.JanusEvent]:
        return [e for batch in self.batches for e in batch]


async def make_client(intake: EventIntake) -> TestClient:  # type: ignore[type-arg]
    client: TestClient = TestClient(TestServer(intake.make_app()))  # type: ignore[type-arg]
    await client.start_server()
    return client


@pytest.fixture
async def open_intake() -> AsyncIterator[tuple[EventIntake, Sink, TestClient]]:  # type: ignore[type-arg]
    sink = Sink()
    intake = EventIntake(sink)
    client = await make_client(intake)
    yield intake, sink, client
    await client.close()


async def test_sampleevh_delivers_in_order(open_intake) -> None:  # type: ignore[no-untyped-def]
    intake, sink, client = open_intake
    for body in ([PUBLISHED], UNPUBLISHED, [UNPUBLISHED, {"type": 999, "event": {}}]):
        response = await client.post("/janus/events", data=json.dumps(body))
        assert response.status == 200
    await intake.drain()
    assert [type(e) for e in sink.events] == [
        ev.VideoRoomPublished,
        ev.VideoRoomUnpublished,
        ev.VideoRoomUnpublished,
        ev.GenericEvent,
    ]
    assert intake.stats.received == 4 and intake.stats.delivered == 4 and intake.stats.malformed == 0


async def test_sampleevh_bad_body_is_400_and_counted(open_intake) -> None:  # type: ignore[no-untyped-def]
    intake, sink, client = open_intake
    response = await client.post("/janus/events", data=b"{oops")
    assert response.status == 400
    assert "not valid JSON" in await response.text()
    response = await client.post("/janus/events", data=b"17")
    assert response.status == 400
    # malformed entries inside a valid array are counted but the POST succeeds (no pointless retries)
    response = await client.post("/janus/events", data=json.dumps([PUBLISHED, {"type": 1}, "x"]))
    assert response.status == 200
    await intake.drain()
    assert intake.stats.bad_requests == 2 and intake.stats.malformed == 4
    assert len(sink.events) == 1


async def test_callback_failure_is_counted_and_intake_keeps_going() -> None:
    calls = 0

    async def flaky(events: list[ev.JanusEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    intake = EventIntake(flaky)
    client = await make_client(intake)
    try:
        for _ in range(2):
            assert (await client.post("/janus/events", data=json.dumps([PUBLISHED]))).status == 200
        await intake.drain()
        assert calls == 2 and intake.stats.callback_errors == 1 and intake.stats.delivered == 1
    finally:
        await client.close()


async def test_answers_before_a_slow_callback_finishes() -> None:
    release = asyncio.Event()

    async def slow(events: list[ev.JanusEvent]) -> None:
        await release.wait()

    intake = EventIntake(slow)
    client = await make_client(intake)
    try:
        async with asyncio.timeout(2):
            assert (await client.post("/janus/events", data=json.dumps([PUBLISHED]))).status == 200
        release.set()
        await intake.drain()
    finally:
        await client.close()


async def test_full_queue_drops_and_counts() -> None:
    release = asyncio.Event()

    async def stuck(events: list[ev.JanusEvent]) -> None:
        await release.wait()

    intake = EventIntake(stuck, max_queue=1)
    client = await make_client(intake)
    try:
        for _ in range(4):
            assert (await client.post("/janus/events", data=json.dumps([PUBLISHED]))).status == 200
        # one in the callback, one queued, two dropped
        assert intake.stats.dropped_events == 2
        release.set()
        await intake.drain()
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/janus/events", {}, 401),
        ("/janus/events?token=wrong", {}, 401),
        ("/janus/events?token=s3cret", {}, 200),
        ("/janus/events", {"Authorization": "Bearer s3cret"}, 200),
        ("/janus/events", {"X-Janus-Token": "s3cret"}, 200),
        ("/janus/events", {"Authorization": "Basic " + base64.b64encode(b"janus:pw").decode()}, 200),
        ("/janus/events", {"Authorization": "Basic " + base64.b64encode(b"janus:bad").decode()}, 401),
        ("/janus/events", {"Authorization": "Basic !!!"}, 401),
    ],
)
async def test_sampleevh_credentials(path: str, headers: dict[str, str], status: int) -> None:
    sink = Sink()
    intake = EventIntake(sink, token="s3cret", basic_auth=("janus", "pw"))
    client = await make_client(intake)
    try:
        response = await client.post(path, data=json.dumps([PUBLISHED]), headers=headers)
        assert response.status == status
        await intake.drain()
        assert len(sink.events) == (1 if status == 200 else 0)
        assert intake.stats.unauthorized == (1 if status == 401 else 0)
    finally:
        await client.close()


async def test_wsevh_delivers_and_counts(open_intake) -> None:  # type: ignore[no-untyped-def]
    intake, sink, client = open_intake
    async with client.ws_connect("/janus/events/ws", protocols=(WSEVH_SUBPROTOCOL,)) as ws:
        assert ws.protocol == WSEVH_SUBPROTOCOL
        await ws.send_str(json.dumps([PUBLISHED]))
        await ws.send_str("garbage")
        await ws.send_str(json.dumps(UNPUBLISHED))
    for _ in range(1000):  # 10 s at most (a loaded machine); then the assertions below say what came
        if intake.stats.received == 2:
            break
        await asyncio.sleep(0.01)
    await intake.drain()
    assert [type(e) for e in sink.events] == [ev.VideoRoomPublished, ev.VideoRoomUnpublished]
    assert intake.stats.ws_connections == 1 and intake.stats.ws_messages == 3 and intake.stats.malformed == 1


async def test_wsevh_requires_token() -> None:
    intake = EventIntake(Sink(), token="s3cret")
    client = await make_client(intake)
    try:
        with pytest.raises(WSServerHandshakeError) as info:
            await client.ws_connect("/janus/events/ws", protocols=(WSEVH_SUBPROTOCOL,))
        assert info.value.status == 401
        ws = await client.ws_connect("/janus/events/ws?token=s3cret", protocols=(WSEVH_SUBPROTOCOL,))
        await ws.close()
    finally:
        await client.close()
