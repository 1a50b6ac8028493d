"""Transport behaviour against a scripted WebSocket server: transactions, acks, errors, timeouts, backoff."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from janus_bridge.errors import JanusConnectionError, JanusTimeoutError, SessionNotFoundError
from janus_bridge.transport import Backoff, ConnectionState, JanusTransport

Reply = Callable[[dict[str, object]], list[dict[str, object]]]


def scripted(reply: Reply) -> Callable[[ServerConnection], object]:
    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            for answer in reply(json.loads(raw)):
                await ws.send(json.dumps(answer))

    return handler


@pytest.fixture
async def server_factory() -> AsyncIterator[Callable[[Reply], object]]:
    servers: list[Server] = []

    async def start(reply: Reply) -> str:
        server = await serve(scripted(reply), "127.0.0.1", 0, subprotocols=["janus-protocol"])  # type: ignore[list-item]
        servers.append(server)
        port = next(iter(server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0, factor=2.0, jitter=0.25)
    rng = random.Random(7)
    for attempt, base in enumerate([0.5, 1.0, 2.0, 4.0, 4.0, 4.0]):
        delay = backoff.delay(attempt, rng)
        assert base * 0.75 <= delay <= base
    assert backoff.delay(10_000) <= 4.0
    with pytest.raises(ValueError):
        Backoff(initial=0)
    with pytest.raises(ValueError):
        Backoff(jitter=1.0)


async def test_request_matches_transaction_and_skips_ack(server_factory) -> None:  # type: ignore[no-untyped-def]
    def reply(msg: dict[str, object]) -> list[dict[str, object]]:
        tx = msg["transaction"]
        return [
            {"janus": "event", "note": "unrelated"},
            {"janus": "ack", "transaction": tx},
            {"janus": "event", "transaction": tx, "echo": msg["janus"]},
        ]

    seen: list[dict[str, object]] = []
    transport = JanusTransport(await server_factory(reply), "janus-protocol", on_message=seen.append)
    await transport.start()
    try:
        answer = await transport.request({"janus": "message"})
        assert answer["echo"] == "message"
        ack = await transport.request({"janus": "keepalive"}, accept_ack=True)
        assert ack["janus"] == "ack"
        assert {"janus": "event", "note": "unrelated"} in seen
    finally:
        await transport.close()
    assert transport.state is ConnectionState.CLOSED


async def test_error_answer_raises_typed_error(server_factory) -> None:  # type: ignore[no-untyped-def]
    def reply(msg: dict[str, object]) -> list[dict[str, object]]:
        error = {"code": 458, "reason": "No such session 1"}
        return [{"janus": "error", "transaction": msg["transaction"], "error": error}]

    transport = JanusTransport(await server_factory(reply), "janus-protocol")
    await transport.start()
    try:
        with pytest.raises(SessionNotFoundError, match="No such session 1"):
            await transport.request({"janus": "keepalive", "session_id": 1})
    finally:
        await transport.close()


async def test_timeout_and_not_connected(server_factory) -> None:  # type: ignore[no-untyped-def]
    transport = JanusTransport(await server_factory(lambda msg: []), "janus-protocol", request_timeout=0.2)
    with pytest.raises(JanusConnectionError, match="not connected"):
        await transport.request({"janus": "info"})
    await transport.start()
    try:
        with pytest.raises(JanusTimeoutError):
            await transport.request({"janus": "info"})
        assert transport._pending == {}
    finally:
        await transport.close()


async def test_pending_requests_fail_fast_when_connection_drops() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.close()

    async with serve(handler, "127.0.0.1", 0, subprotocols=["janus-protocol"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        transport = JanusTransport(
            f"ws://127.0.0.1:{port}", "janus-protocol", request_timeout=30, backoff=Backoff(initial=5)
        )
        await transport.start()
        try:
            async with asyncio.timeout(3):
                with pytest.raises(JanusConnectionError, match="lost"):
                    await transport.request({"janus": "info"})
        finally:
            await transport.close()


async def test_connect_failure_reports_last_error() -> None:
    transport = JanusTransport(
        "ws://127.0.0.1:9", "janus-protocol", ready_timeout=0.3, backoff=Backoff(initial=0.05, maximum=0.1)
    )
    states: list[ConnectionState] = []
    transport.add_state_listener(states.append)
    try:
        with pytest.raises(JanusConnectionError, match=r"not connected .* after 0\.3 s"):
            await transport.start()
        assert ConnectionState.DISCONNECTED in states and ConnectionState.CONNECTED not in states
        assert transport.generation == 0
    finally:
        await transport.close()
