"""Keepalive past session_timeout, and reconnection after Janus is killed and restarted (real Janus)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from janus_fixture import ADMIN_KEY, FAST_BACKOFF, ROOM, ROOM_SECRET, JanusServer, start_or_skip

from janus_bridge import errors
from janus_bridge.admin import JanusAdminClient
from janus_bridge.client import JanusClient
from janus_bridge.transport import ConnectionState, JanusTransport

SESSION_TIMEOUT = 3


async def test_keepalive_keeps_session_past_session_timeout(tmp_path: Path) -> None:
    server = start_or_skip(JanusServer(tmp_path, session_timeout=SESSION_TIMEOUT))
    kept = JanusClient(server.ws_url, keepalive_interval=1.0, backoff=FAST_BACKOFF)
    # a bare session without keepalives, to show the timeout is real
    bare = JanusTransport(server.ws_url, "janus-protocol")
    pushed: list[dict[str, object]] = []
    bare._on_message = pushed.append
    try:
        await kept.connect()
        await bare.start()
        bare_session = (await bare.request({"janus": "create"}))["data"]["id"]  # type: ignore[index]
        session = kept.session_id
        started = time.monotonic()
        while not any(m.get("janus") == "timeout" for m in pushed):
            assert time.monotonic() - started < SESSION_TIMEOUT + 5, "bare session never timed out"
            await asyncio.sleep(0.1)
        timed_out_after = time.monotonic() - started
        assert timed_out_after >= SESSION_TIMEOUT - 0.5
        try:
            await bare.request({"janus": "keepalive", "session_id": bare_session}, accept_ack=True)
            raise AssertionError("the bare session should be gone")
        except errors.SessionNotFoundError:
            pass
        # the kept session is the same one and still answers
        assert kept.session_id == session and kept.generation == 1
        assert await (await kept.videoroom()).exists(ROOM)
    finally:
        await bare.close()
        await kept.close()
        server.stop()


async def test_reconnects_after_janus_restart(tmp_path: Path) -> None:
    server = start_or_skip(JanusServer(tmp_path))
    client = JanusClient(server.ws_url, request_timeout=3.0, backoff=FAST_BACKOFF)
    admin = JanusAdminClient(server.admin_url, server.admin_secret, backoff=FAST_BACKOFF)
    states: list[ConnectionState] = []
    reconnected, lost = asyncio.Event(), asyncio.Event()

    async def on_state(state: ConnectionState) -> None:  # async listeners are supported too
        if state is ConnectionState.CONNECTED and client.generation > 1:
            reconnected.set()
        if state is ConnectionState.DISCONNECTED:
            lost.set()

    client.add_state_listener(states.append)
    client.add_state_listener(on_state)
    try:
        await client.connect()
        await admin.connect()
        room = await client.videoroom()
        first_session = client.session_id
        assert await room.exists(ROOM)

        server.kill()
        async with asyncio.timeout(5):
            await lost.wait()
        assert not client.connected.is_set()
        try:
            await room.exists(ROOM)
            raise AssertionError("requests must fail while disconnected")
        except errors.JanusConnectionError:
            pass

        restart = time.monotonic()
        await asyncio.to_thread(server.start)
        ready = time.monotonic()
        async with asyncio.timeout(10):
            await reconnected.wait()
            await admin.transport.connected.wait()
        print(
            f"janus restarted in {ready - restart:.2f} s; client reconnected "
            f"{time.monotonic() - ready:.2f} s after it answered"
        )
        assert client.generation == 2 and admin.generation == 2
        assert client.session_id is not None and client.session_id != first_session
        assert states[0] is ConnectionState.CONNECTING and states[1] is ConnectionState.CONNECTED
        assert ConnectionState.DISCONNECTED in states and states[-1] is ConnectionState.CONNECTED
        # the same VideoRoom object works again (handle re-attached in the new session)
        assert await room.exists(ROOM)
        assert await admin.list_forwarders(ROOM, ROOM_SECRET) == []
        assert client.session_id in await admin.list_sessions()
        rid = await room.create_room(admin_key=ADMIN_KEY)
        await room.destroy_room(rid)
    finally:
        await admin.close()
        await client.close()
        server.stop()


async def test_session_lost_behind_our_back_is_rebuilt(janus: JanusServer) -> None:
    """If Janus forgets our session (timeout, admin destroy), the next keepalive notices and reconnects."""
    client = JanusClient(janus.ws_url, keepalive_interval=0.3, backoff=FAST_BACKOFF)
    rebuilt = asyncio.Event()
    client.add_state_listener(
        lambda state: rebuilt.set() if state is ConnectionState.CONNECTED and client.generation > 1 else None
    )
    await client.connect()
    try:
        room = await client.videoroom()
        # destroy the session through a second connection: Janus then answers 458 to our keepalive
        other = JanusTransport(janus.ws_url, "janus-protocol")
        await other.start()
        await other.request({"janus": "destroy", "session_id": client.session_id})
        await other.close()
        async with asyncio.timeout(5):
            await rebuilt.wait()
        assert await room.exists(ROOM)
    finally:
        await client.close()
