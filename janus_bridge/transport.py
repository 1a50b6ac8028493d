"""One reconnecting WebSocket to Janus with transactions: the layer under the Janus and Admin API clients.

- Subprotocol ``janus-protocol`` (Janus API) or ``janus-admin-protocol`` (Admin API).
- ``request()`` adds a random ``transaction``, waits for the answer with that transaction and raises the
  typed ``JanusApiError`` for ``janus: error``. ``ack`` answers are skipped unless the caller asks for them
  (keepalive is answered by a bare ack; asynchronous plugin requests by an ack, then an ``event``).
- The connection loop reconnects with capped, jittered exponential backoff. After each connect it runs the
  owner's ``on_open`` hook (create a session, re-attach handles) and only then reports CONNECTED, so
  "connected" means "ready to use". State changes go to listeners and to the ``connected`` event;
  ``generation`` counts successful connects so an owner can tell "reconnected" from "still connected".
- Messages without a pending transaction (Janus events: ``timeout``, ``detached``, plugin events...) go
  to ``on_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State
from websockets.typing import Subprotocol

from janus_bridge.errors import (
    JanusConnectionError,
    JanusProtocolError,
    JanusTimeoutError,
    api_error,
)

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
StateListener = Callable[["ConnectionState"], Awaitable[None] | None]


class ConnectionState(enum.StrEnum):
    """Where the connection is. Only CONNECTED accepts requests from users of the client."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``min(maximum, initial * factor**n)``, then jittered
    down by up to ``jitter`` (a fraction), so many clients restarting together spread out."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError(f"invalid backoff {self}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        draw = (rng or random).random()
        return base * (1.0 - self.jitter * draw)


@dataclass
class _Pending:
    future: asyncio.Future[JsonObject]
    accept_ack: bool


def new_transaction() -> str:
    """A random transaction id (96 bits, hex)."""
    return secrets.token_hex(12)


class JanusTransport:
    """A reconnecting WebSocket to Janus that matches answers to requests by transaction."""

    def __init__(
        self,
        url: str,
        subprotocol: str,
        *,
        on_open: Callable[[], Awaitable[None]] | None = None,
        on_message: Callable[[JsonObject], None] | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        ready_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        backoff: Backoff | None = None,
        name: str = "janus",
    ) -> None:
        self.url = url
        self.subprotocol = subprotocol
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout
        self.ping_interval = ping_interval
        self.backoff = backoff or Backoff()
        self.name = name
        self._on_open = on_open
        self._on_message = on_message
        self._ws: ClientConnection | None = None
        self._pending: dict[str, _Pending] = {}
        self._listeners: list[StateListener] = []
        self._listener_tasks: set[asyncio.Future[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._state = ConnectionState.DISCONNECTED
        self.connected = asyncio.Event()
        """Set while the state is CONNECTED."""
        self.generation = 0
        """Number of successful connects so far (1 after the first, 2 after the first reconnect...)."""
        self.last_error: BaseException | None = None

    # -- state ---------------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(state)`` on every state change; coroutine functions run as tasks."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        log.info("%s %s: %s -> %s", self.name, self.url, self._state, state)
        self._state = state
        if state is ConnectionState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()
        for listener in list(self._listeners):
            try:
                result = listener(state)
            except Exception:
                log.exception("%s state listener failed", self.name)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._listener_tasks.add(task)
                task.add_done_callback(self._listener_done)

    def _listener_done(self, task: asyncio.Future[None]) -> None:
        self._listener_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s state listener failed", self.name, exc_info=task.exception())

    # -- lifecycle -----------------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Start the connection loop; with ``wait``, return once connected (``JanusConnectionError``
        if that takes longer than ``ready_timeout``; the loop keeps trying in the background)."""
        if self._closing:
            raise JanusConnectionError(f"{self.name} client is closed")
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"{self.name}-connection")
        if not wait:
            return
        try:
            async with asyncio.timeout(self.ready_timeout):  # not wait_for: on 3.11 it can swallow a cancel
                await self.connected.wait()
        except TimeoutError:
            raise JanusConnectionError(
                f"{self.name}: not connected to {self.url} after {self.ready_timeout} s"
                f" (last error: {self.last_error!r})"
            ) from None

    def reconnect(self) -> None:
        """Drop the current connection; the loop connects again (and runs ``on_open`` again)."""
        ws = self._ws
        if ws is not None:
            task = asyncio.ensure_future(ws.close())
            self._listener_tasks.add(task)
            task.add_done_callback(self._listener_tasks.discard)

    async def close(self) -> None:
        self._closing = True
        runner, self._runner = self._runner, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._fail_pending(JanusConnectionError(f"{self.name} client closed"))
        self._set_state(ConnectionState.CLOSED)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._set_state(ConnectionState.CONNECTING)
            opened = await self._connect_once()
            if self._closing:
                break
            self._set_state(ConnectionState.DISCONNECTED)
            attempt = 0 if opened else attempt + 1
            delay = self.backoff.delay(attempt)
            log.debug("%s: reconnecting in %.2f s", self.name, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> bool:
        """One connection's life. True if it got as far as CONNECTED."""
        try:
            ws = await connect(
                self.url,
                subprotocols=[Subprotocol(self.subprotocol)],
                open_timeout=self.connect_timeout,
                ping_interval=self.ping_interval,
                max_size=None,
                proxy=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            self.last_error = exc
            log.warning("%s: cannot connect to %s: %r", self.name, self.url, exc)
            return False
        self._ws = ws
        reader = asyncio.create_task(self._read(ws), name=f"{self.name}-reader")
        opened = False
        try:
            if self._on_open is not None:
                await self._on_open()
            if ws.state is State.OPEN:
                opened = True
                self.generation += 1
                self._set_state(ConnectionState.CONNECTED)
            await reader
        except (JanusConnectionError, ConnectionClosed) as exc:
            self.last_error = exc
            log.warning("%s: connection to %s lost: %r", self.name, self.url, exc)
        except Exception as exc:
            # on_open refused (e.g. wrong api secret): log, drop the connection, retry with backoff
            self.last_error = exc
            log.error("%s: setting up the connection to %s failed: %r", self.name, self.url, exc)
        finally:
            self._ws = None
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ws.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            self._fail_pending(JanusConnectionError(f"{self.name}: connection to {self.url} lost"))
        return opened

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    log.warning("%s: ignoring a non-JSON message: %.200r", self.name, raw)
                    continue
                if not isinstance(message, dict):
                    log.warning("%s: ignoring a non-object message: %.200r", self.name, raw)
                    continue
                self._dispatch(message)
        # answers cannot come any more: fail waiting requests now (on_open may be waiting on one)
        self._fail_pending(JanusConnectionError(f"{self.name}: connection to {self.url} lost"))

    def _dispatch(self, message: JsonObject) -> None:
        transaction = message.get("transaction")
        pending = self._pending.get(transaction) if isinstance(transaction, str) else None
        if pending is not None and (message.get("janus") != "ack" or pending.accept_ack):
            del self._pending[transaction]  # type: ignore[arg-type]
            if not pending.future.done():
                pending.future.set_result(message)
            return
        if pending is not None:
            return  # ack of an asynchronous request: the answer comes later as an event
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:
                log.exception("%s: message handler failed", self.name)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(error)

    # -- requests ------------------------------------------------------------------------------------

    async def request(
        self,
        message: Mapping[str, Any],
        *,
        accept_ack: bool = False,
        wait: float | None = None,
    ) -> JsonObject:
        """Send ``message`` with a fresh transaction and return Janus's answer.

        Raises the typed ``JanusApiError`` for ``janus: error``, ``JanusTimeoutError`` when no answer
        comes in ``wait`` seconds (default ``request_timeout``) and ``JanusConnectionError`` when not
        connected or the connection drops first.
        """
        ws = self._ws
        if ws is None:
            raise JanusConnectionError(f"{self.name}: not connected to {self.url}")
        transaction = new_transaction()
        payload = {**message, "transaction": transaction}
        future: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = _Pending(future, accept_ack)
        wait = self.request_timeout if wait is None else wait
        try:
            try:
                await ws.send(json.dumps(payload))
            except ConnectionClosed as exc:
                raise JanusConnectionError(f"{self.name}: connection to {self.url} lost") from exc
            try:
                async with asyncio.timeout(wait):
                    answer = await future
            except TimeoutError:
                raise JanusTimeoutError(
                    f"{self.name}: no answer to {message.get('janus')!r} within {wait} s"
                ) from None
        finally:
            self._pending.pop(transaction, None)
        if answer.get("janus") == "error":
            error = answer.get("error")
            if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                raise JanusProtocolError(f"malformed error answer: {answer!r}")
            raise api_error(error["code"], error.get("reason"))
        return answer


class OnTransport:
    """The connection-state face shared by the API and Admin clients: both delegate to `transport`."""

    transport: JanusTransport

    @property
    def state(self) -> ConnectionState:
        return self.transport.state

    @property
    def connected(self) -> asyncio.Event:
        """Set while connected (for the API client: with a live session)."""
        return self.transport.connected

    @property
    def generation(self) -> int:
        """Successful connects so far; it changes on every reconnect (a new session)."""
        return self.transport.generation

    @property
    def last_error(self) -> BaseException | None:
        """Why the last connection attempt failed or the last connection ended."""
        return self.transport.last_error

    def add_state_listener(self, listener: StateListener) -> None:
        """``listener(state)`` on every change; CONNECTED means ready for requests."""
        self.transport.add_state_listener(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        self.transport.remove_state_listener(listener)
