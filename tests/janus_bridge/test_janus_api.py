"""Janus API and Admin API against a real Janus 1.1.2 (loopback; no WebRTC needed for these calls)."""

from __future__ import annotations

import itertools

import pytest
from janus_fixture import (
    ADMIN_KEY,
    ROOM,
    ROOM_SECRET,
    JanusServer,
    eventually,
    free_udp_port_pair,
    join_fake_publisher,
)

from janus_bridge import errors
from janus_bridge.admin import JanusAdminClient
from janus_bridge.client import VIDEOROOM_PLUGIN, JanusClient
from janus_bridge.transport import ConnectionState
from janus_bridge.videoroom import ForwardStream, Participant

_rooms = itertools.count(71000)


async def test_connects_with_session_and_info(client: JanusClient) -> None:
    assert client.state is ConnectionState.CONNECTED and client.connected.is_set()
    assert client.session_id is not None and client.generation == 1
    info = await client.info()
    assert info["janus"] == "server_info" and info["version_string"] == "1.1.2"
    assert VIDEOROOM_PLUGIN in info["plugins"]


async def test_room_lifecycle(client: JanusClient) -> None:
    room = await client.videoroom()
    assert await room.exists(ROOM)
    rid = next(_rooms)
    assert not await room.exists(rid)
    assert await room.create_room(rid, description="t", secret="rs", admin_key=ADMIN_KEY, publishers=3) == rid
    assert await room.exists(rid)
    listed = {r.room: r for r in await room.list_rooms()}
    assert listed[rid].description == "t" and listed[rid].max_publishers == 3
    with pytest.raises(errors.RoomExistsError):
        await room.create_room(rid, admin_key=ADMIN_KEY)
    with pytest.raises(errors.VideoRoomUnauthorizedError, match="wrong secret"):
        await room.destroy_room(rid, secret="nope")
    await room.destroy_room(rid, secret="rs")
    assert not await room.exists(rid)
    auto = await room.create_room(admin_key=ADMIN_KEY)  # Janus picks the id
    assert isinstance(auto, int) and await room.exists(auto)
    await room.destroy_room(auto)


async def test_videoroom_errors(client: JanusClient) -> None:
    room = await client.videoroom()
    with pytest.raises(errors.MissingElementError, match="admin_key"):
        await room.create_room(next(_rooms))
    with pytest.raises(errors.VideoRoomUnauthorizedError):
        await room.create_room(next(_rooms), admin_key="wrong")
    with pytest.raises(errors.NoSuchRoomError, match="No such room"):
        await room.list_participants(999999)
    with pytest.raises(errors.NoSuchRoomError):
        await room.list_forwarders(999999, "x")
    with pytest.raises(errors.MissingElementError, match="secret"):
        await room.list_forwarders(ROOM)
    with pytest.raises(errors.VideoRoomUnauthorizedError, match="wrong secret"):
        await room.list_forwarders(ROOM, "wrong")
    streams = [ForwardStream("0", 5000)]
    with pytest.raises(errors.NoSuchFeedError, match="No such feed"):
        await room.rtp_forward(ROOM, 42, "127.0.0.1", streams, secret=ROOM_SECRET, admin_key=ADMIN_KEY)
    with pytest.raises(errors.MissingElementError, match="admin_key"):
        await room.rtp_forward(ROOM, 42, "127.0.0.1", streams, secret=ROOM_SECRET)
    with pytest.raises(errors.VideoRoomUnauthorizedError, match="admin_key"):
        await room.rtp_forward(ROOM, 42, "127.0.0.1", streams, secret=ROOM_SECRET, admin_key="bad")
    with pytest.raises(errors.VideoRoomUnauthorizedError, match="wrong secret"):
        await room.rtp_forward(ROOM, 42, "127.0.0.1", streams, secret="bad", admin_key=ADMIN_KEY)
    with pytest.raises(errors.VideoRoomInvalidRequestError, match="Unknown request"):
        await room.handle.request({"request": "bogus"})


async def test_core_errors(client: JanusClient) -> None:
    with pytest.raises(errors.SessionNotFoundError, match="No such session"):
        await client.transport.request({"janus": "keepalive", "session_id": 1}, accept_ack=True)
    with pytest.raises(errors.HandleNotFoundError):
        await client.transport.request(
            {"janus": "message", "session_id": client.session_id, "handle_id": 1, "body": {}}
        )
    with pytest.raises(errors.PluginNotFoundError):
        await client.attach("janus.plugin.nope")
    with pytest.raises(errors.UnknownRequestError):
        await client.transport.request({"janus": "frobnicate", "session_id": client.session_id})


async def test_forwarders_with_a_publisher(client: JanusClient) -> None:
    room = await client.videoroom()
    handle, publisher = await join_fake_publisher(client, display="forwarded")
    try:
        participants = await room.list_participants(ROOM)
        assert Participant(id=publisher, display="forwarded", publisher=False) in participants
        audio, video = free_udp_port_pair(), free_udp_port_pair()
        forwarders = await room.rtp_forward(
            ROOM,
            publisher,
            "127.0.0.1",
            [ForwardStream("0", audio, pt=111, ssrc=1234), ForwardStream("1", video, rtcp_port=video + 1)],
            secret=ROOM_SECRET,
            admin_key=ADMIN_KEY,
        )
        assert [(f.mid, f.type, f.port) for f in forwarders] == [("0", "audio", audio), ("1", "video", video)]
        assert (forwarders[0].pt, forwarders[0].ssrc) == (111, 1234)
        assert forwarders[1].remote_rtcp_port == video + 1 and forwarders[1].local_rtcp_port
        listed = await room.list_forwarders(ROOM, ROOM_SECRET)
        mine = next(p for p in listed if p.publisher_id == publisher)
        assert {f.stream_id for f in mine.forwarders} == {f.stream_id for f in forwarders}

        # A mid the publisher does not have: Janus answers success without it; we raise and roll back.
        spare = free_udp_port_pair()
        with pytest.raises(errors.ForwarderNotCreatedError) as info:
            await room.rtp_forward(
                ROOM,
                publisher,
                "127.0.0.1",
                [ForwardStream("0", spare), ForwardStream("7", spare + 1)],
                secret=ROOM_SECRET,
                admin_key=ADMIN_KEY,
            )
        assert info.value.missing_mids == ("7",) and len(info.value.stopped_stream_ids) == 1
        after = next(p for p in await room.list_forwarders(ROOM, ROOM_SECRET) if p.publisher_id == publisher)
        assert {f.stream_id for f in after.forwarders} == {f.stream_id for f in forwarders}

        for forwarder in forwarders:
            await room.stop_rtp_forward(
                ROOM, publisher, forwarder.stream_id, secret=ROOM_SECRET, admin_key=ADMIN_KEY
            )
        with pytest.raises(errors.NoSuchFeedError, match="No such stream"):
            await room.stop_rtp_forward(
                ROOM, publisher, forwarders[0].stream_id, secret=ROOM_SECRET, admin_key=ADMIN_KEY
            )
        assert all(p.publisher_id != publisher for p in await room.list_forwarders(ROOM, ROOM_SECRET))
    finally:
        await handle.detach()

    async def left() -> bool:
        return all(p.id != publisher for p in await room.list_participants(ROOM))

    await eventually(left)  # Janus removes the participant asynchronously after the detach


async def test_admin_api(client: JanusClient, admin: JanusAdminClient, janus: JanusServer) -> None:
    await admin.ping()
    room = await client.videoroom()
    assert client.session_id in await admin.list_sessions()
    handles = await admin.list_handles(client.session_id)  # type: ignore[arg-type]
    assert room.handle.handle_id in handles  # type: ignore[attr-defined]
    info = await admin.handle_info(client.session_id, room.handle.handle_id)  # type: ignore[arg-type, attr-defined]
    assert info.plugin == VIDEOROOM_PLUGIN and info.session_id == client.session_id

    handle, publisher = await join_fake_publisher(client, display="admin-view")
    try:
        pub_info = await admin.handle_info(client.session_id, handle.handle_id)  # type: ignore[arg-type]
        assert pub_info.plugin_specific["id"] == publisher
        assert [s["mid"] for s in pub_info.plugin_specific["streams"]] == ["0", "1"]
        port = free_udp_port_pair()
        await room.rtp_forward(
            ROOM, publisher, "127.0.0.1", [ForwardStream("1", port)], secret=ROOM_SECRET, admin_key=ADMIN_KEY
        )
        listed = await admin.list_forwarders(ROOM, ROOM_SECRET)
        assert [f.port for p in listed if p.publisher_id == publisher for f in p.forwarders] == [port]
        raw = await admin.message_plugin(VIDEOROOM_PLUGIN, {"request": "exists", "room": ROOM})
        assert raw["exists"] is True
        with pytest.raises(errors.NoSuchRoomError):
            await admin.message_plugin(
                VIDEOROOM_PLUGIN, {"request": "listforwarders", "room": 9, "secret": "x"}
            )
        assert await admin.videoroom().exists(ROOM)
    finally:
        await handle.detach()

    wrong = JanusAdminClient(janus.admin_url, "not-the-secret")
    await wrong.connect()
    try:
        with pytest.raises(errors.UnauthorizedError, match="Unauthorized request"):
            await wrong.list_sessions()
    finally:
        await wrong.close()


async def test_requests_when_closed_fail_fast(janus: JanusServer) -> None:
    c = JanusClient(janus.ws_url)
    await c.connect()
    room = await c.videoroom()
    await c.close()
    assert c.state is ConnectionState.CLOSED and c.session_id is None
    with pytest.raises(errors.JanusConnectionError):
        await room.exists(ROOM)
    with pytest.raises(errors.JanusConnectionError):
        await c.attach(VIDEOROOM_PLUGIN)
