"""Real Janus event handlers (sampleevh over HTTP, wsevh over WebSocket) delivering to the intake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from janus_fixture import (
    ADMIN_KEY,
    FAST_BACKOFF,
    ROOM,
    ROOM_SECRET,
    JanusServer,
    free_port,
    free_udp_port_pair,
    join_fake_publisher,
    start_or_skip,
)

from janus_bridge import events as ev
from janus_bridge.client import JanusClient
from janus_bridge.intake import EventIntake
from janus_bridge.videoroom import ForwardStream

TOKEN = "evh-token"


class Collector:
    def __init__(self) -> None:
        self.events: list[ev.JanusEvent] = []

    async def __call__(self, events: list[ev.JanusEvent]) -> None:
        self.events.extend(events)

    async def wait_for(
        self, predicate: Callable[[ev.JanusEvent], bool], within: float = 5.0
    ) -> ev.JanusEvent:
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await asyncio.sleep(0.02)


async def test_sampleevh_and_wsevh_deliver_real_events(tmp_path: Path) -> None:
    http_sink, ws_sink = Collector(), Collector()
    http_intake = EventIntake(http_sink, token=TOKEN, basic_auth=("janus", "evh-pw"))
    ws_intake = EventIntake(ws_sink, token=TOKEN)
    app = web.Application()
    http_intake.add_routes(app, http_path="/evh", ws_path="/unused-ws")
    ws_intake.add_routes(app, http_path="/unused-http", ws_path="/wsevh")
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server = JanusServer(
        tmp_path,
        sampleevh_url=f"http://127.0.0.1:{port}/evh",  # credentials by basic auth (backend_user/pwd)
        sampleevh_user="janus",
        sampleevh_password="evh-pw",
        wsevh_url=f"ws://127.0.0.1:{port}/wsevh?token={TOKEN}",
    )
    client = JanusClient(server.ws_url, backoff=FAST_BACKOFF)
    try:
        await asyncio.to_thread(start_or_skip, server)
        for sink in (http_sink, ws_sink):  # Janus announces itself first
            await sink.wait_for(lambda e: isinstance(e, ev.CoreEvent) and e.status == "started")

        await client.connect()
        session = client.session_id
        room = await client.videoroom()
        handle, publisher = await join_fake_publisher(client, display="evh")
        port_a = free_udp_port_pair()
        (forwarder,) = await room.rtp_forward(
            ROOM,
            publisher,
            "127.0.0.1",
            [ForwardStream("0", port_a)],
            secret=ROOM_SECRET,
            admin_key=ADMIN_KEY,
        )
        await room.stop_rtp_forward(
            ROOM, publisher, forwarder.stream_id, secret=ROOM_SECRET, admin_key=ADMIN_KEY
        )
        await handle.detach()
        await client.close()

        for sink in (http_sink, ws_sink):
            created = await sink.wait_for(
                lambda e: isinstance(e, ev.SessionEvent) and e.session_id == session
            )
            assert isinstance(created, ev.SessionEvent) and created.name == "created"
            await sink.wait_for(
                lambda e: isinstance(e, ev.HandleEvent) and e.session_id == session and e.name == "attached"
            )
            joined = await sink.wait_for(
                lambda e: isinstance(e, ev.VideoRoomJoined) and e.publisher_id == publisher
            )
            assert isinstance(joined, ev.VideoRoomJoined) and joined.display == "evh" and joined.room == ROOM
            await sink.wait_for(
                lambda e: isinstance(e, ev.VideoRoomConfigured) and e.publisher_id == publisher
            )
            fwd = await sink.wait_for(
                lambda e: isinstance(e, ev.VideoRoomRtpForward) and e.publisher_id == publisher
            )
            assert isinstance(fwd, ev.VideoRoomRtpForward)
            assert (fwd.stream_id, fwd.port, fwd.media, fwd.session_id) == (
                forwarder.stream_id,
                port_a,
                "audio",
                None,
            )
            await sink.wait_for(
                lambda e: isinstance(e, ev.VideoRoomStopRtpForward) and e.stream_id == forwarder.stream_id
            )
            await sink.wait_for(
                lambda e: isinstance(e, ev.VideoRoomUnpublished) and e.publisher_id == publisher
            )
            await sink.wait_for(lambda e: isinstance(e, ev.VideoRoomLeaving) and e.publisher_id == publisher)
            await sink.wait_for(
                lambda e: isinstance(e, ev.SessionEvent) and e.session_id == session and e.name == "destroyed"
            )
        # an intake counts a batch received when it comes in and delivered once its own task has passed it
        # to the sink, a loop iteration later; a batch after "destroyed" may be between the two right now
        intakes = (http_intake, ws_intake)
        for _ in range(250):  # 5 s at most
            if all(i.stats.received == i.stats.delivered for i in intakes):
                break
            await asyncio.sleep(0.02)
        for intake in intakes:
            assert intake.stats.malformed == 0 and intake.stats.unauthorized == 0
            assert intake.stats.received == intake.stats.delivered > 0
        assert http_intake.stats.http_requests > 0 and ws_intake.stats.ws_connections == 1

        # both channels carry the same events of our session. Each handler queues and sends on its own
        # thread (sampleevh in batches), so an event after "destroyed" may still be on its way on one of
        # them (CI saw the HTTP side one event behind): wait until both agree, then compare.
        def ours(sink: Collector) -> list[int]:
            return sorted(e.timestamp for e in sink.events if e.session_id == session)

        for _ in range(250):  # 5 s at most
            if ours(http_sink) == ours(ws_sink):
                break
            await asyncio.sleep(0.02)
        assert ours(http_sink) == ours(ws_sink)
    finally:
        await client.close()
        await asyncio.to_thread(server.stop)
        await runner.cleanup()
