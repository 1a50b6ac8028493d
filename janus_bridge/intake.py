"""Event-handler intake: receives Janus events over HTTP (sampleevh) and WebSocket (wsevh).

    intake = EventIntake(on_events, token="s3cret")       # async def on_events(events: list[JanusEvent])
    app = intake.make_app()                                # or intake.add_routes(existing_app)
    # Janus sampleevh: backend = "http://HOST:PORT/janus/events?token=s3cret"
    # Janus wsevh:     backend = "ws://HOST:PORT/janus/events/ws?token=s3cret"
    #                  subprotocol = "janus-event-handlers"

- sampleevh POSTs a JSON array (``grouping = true``) or object. Answers 401 on bad credentials, 400 when
  the body is not JSON (or not an object/array), otherwise 200 at once: Janus's sender blocks on each
  POST, so delivery to the callback happens after answering, from a queue.
- wsevh: Janus connects as a WebSocket client (subprotocol ``janus-event-handlers``) and sends the same
  bodies as text messages.
- Credentials: a shared ``token`` (query ``?token=``, ``Authorization: Bearer``, or ``X-Janus-Token``)
  and/or HTTP basic auth (``basic_auth=(user, password)``, Janus's ``backend_user``/``backend_pwd``).
  With both configured either is accepted; with none, the intake is open (the service refuses to start
  that way unless told to, `janus.events_open`).
- Hostile bodies: at most ``max_entries`` events per body (413 beyond), JSON nested deeper than Python
  can parse is a 400, and bodies over ``PARSE_OFF_LOOP`` bytes are parsed in a worker thread so a large
  post never stalls the recordings' event loop.
- Shutdown closes every open wsevh WebSocket (``on_shutdown``), so the server's cleanup never waits on it.
- One worker delivers batches to the callback in arrival order (ordering matters: published before
  unpublished). A callback exception is logged and counted; it does not stop the intake. If the queue is
  full the batch is dropped and counted (``stats.dropped_events``): nothing is lost silently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from janus_bridge.events import EventParseError, JanusEvent, decode_body, parse_entries

log = logging.getLogger(__name__)

EventCallback = Callable[[list[JanusEvent]], Awaitable[None]]
WSEVH_SUBPROTOCOL = "janus-event-handlers"
PARSE_OFF_LOOP = 64 * 1024
"""Bodies larger than this (bytes) are parsed in a worker thread."""
MAX_BODY = 16 * 1024 * 1024
"""Largest event body (HTTP POST or WebSocket message) accepted: Janus batches with SDPs are large."""


@dataclass
class IntakeStats:
    """Counters since start (exported as metrics by the service)."""

    http_requests: int = 0
    ws_connections: int = 0
    ws_messages: int = 0
    received: int = 0
    """Well-formed events received (both endpoints)."""
    malformed: int = 0
    """Malformed entries, plus whole bodies that were not JSON."""
    unauthorized: int = 0
    bad_requests: int = 0
    """Bodies refused as a whole: not JSON, nested too deep, too many events."""
    delivered: int = 0
    callback_errors: int = 0
    dropped_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class EventIntake:
    """Both event-handler endpoints, delivering parsed events to one async callback in order."""

    def __init__(
        self,
        callback: EventCallback,
        *,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        max_queue: int = 10_000,
        max_entries: int = 10_000,
    ) -> None:
        self.callback = callback
        self.token = token
        self.basic_auth = basic_auth
        self.max_entries = max_entries
        self.stats = IntakeStats()
        self._queue: asyncio.Queue[list[JanusEvent]] = asyncio.Queue(max_queue)
        self._worker: asyncio.Task[None] | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def open(self) -> bool:
        """No credentials: anyone who reaches the endpoint can post events."""
        return self.token is None and self.basic_auth is None

    # -- aiohttp wiring --------------------------------------------------------------------------------

    def add_routes(
        self, app: web.Application, *, http_path: str = "/janus/events", ws_path: str = "/janus/events/ws"
    ) -> None:
        app.router.add_post(http_path, self.sampleevh_handler)
        app.router.add_get(ws_path, self.wsevh_handler)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)

    def make_app(
        self,
        *,
        http_path: str = "/janus/events",
        ws_path: str = "/janus/events/ws",
        client_max_size: int = MAX_BODY,
    ) -> web.Application:
        """An aiohttp app with both endpoints (bodies up to ``client_max_size``: SDPs make batches big)."""
        app = web.Application(client_max_size=client_max_size)
        self.add_routes(app, http_path=http_path, ws_path=ws_path)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close_sockets()

    async def _on_cleanup(self, app: web.Application) -> None:
        await self.close()

    async def close_sockets(self) -> None:
        """Close every open wsevh WebSocket (Janus reconnects to whoever listens next)."""
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # -- delivery ------------------------------------------------------------------------------------

    async def _ingest(self, body: bytes | str) -> None:
        """Parse a body and queue its events. Raises ``EventParseError`` if it cannot be taken at all."""
        if len(body) > PARSE_OFF_LOOP:
            parsed = await asyncio.to_thread(self._parse, body)
        else:
            parsed = self._parse(body)
        entries, events, malformed = parsed
        self.stats.malformed += malformed
        self.stats.received += len(events)
        if malformed:
            log.warning("janus event intake: %d malformed event(s) in a batch of %d", malformed, len(entries))
        if not events:
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._deliver(), name="janus-event-intake")
        try:
            self._queue.put_nowait(events)
        except asyncio.QueueFull:
            self.stats.dropped_events += len(events)
            log.error("janus event intake: queue full, dropped %d event(s)", len(events))

    def _parse(self, body: bytes | str) -> tuple[list[Any], list[JanusEvent], int]:
        try:
            entries = decode_body(body)
        except EventParseError:
            self.stats.malformed += 1
            raise
        if len(entries) > self.max_entries:
            raise BodyTooLargeError(f"{len(entries)} events in one body; at most {self.max_entries}")
        events, malformed = parse_entries(entries)
        return entries, events, malformed

    async def _deliver(self) -> None:
        while True:
            events = await self._queue.get()
            try:
                await self.callback(events)
                self.stats.delivered += len(events)
            except asyncio.CancelledError:
                self.stats.dropped_events += len(events)  # closed while delivering
                raise
            except Exception:
                self.stats.callback_errors += 1
                log.exception("janus event intake: callback failed on %d event(s)", len(events))
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued batch went through the callback."""
        await self._queue.join()

    async def close(self) -> None:
        """Stop the worker (queued batches not yet delivered are dropped and counted)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        while not self._queue.empty():
            self.stats.dropped_events += len(self._queue.get_nowait())
            self._queue.task_done()

    # -- auth ------------------------------------------------------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        if self.token is None and self.basic_auth is None:
            return True
        header = request.headers.get("Authorization", "")
        if self.token is not None:
            offered = [request.query.get("token"), request.headers.get("X-Janus-Token")]
            if header[:7].lower() == "bearer ":
                offered.append(header[7:].strip())
            if any(o is not None and _same(o, self.token) for o in offered):
                return True
        if self.basic_auth is not None and header[:6].lower() == "basic ":
            try:
                user, _, password = (
                    base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                return False
            return _same(user, self.basic_auth[0]) & _same(password, self.basic_auth[1])
        return False

    def _unauthorized(self) -> web.Response:
        self.stats.unauthorized += 1
        headers = {"WWW-Authenticate": 'Basic realm="janus-events"'} if self.basic_auth else None
        return web.Response(status=401, text="unauthorized\n", headers=headers)

    # -- handlers --------------------------------------------------------------------------------------

    async def sampleevh_handler(self, request: web.Request) -> web.Response:
        """POST handler for Janus's sampleevh."""
        self.stats.http_requests += 1
        if not self.authorized(request):
            return self._unauthorized()
        body = await request.read()
        try:
            await self._ingest(body)
        except BodyTooLargeError as exc:
            self.stats.bad_requests += 1
            return web.Response(status=413, text=f"event body too large: {exc}\n")
        except EventParseError as exc:
            self.stats.bad_requests += 1
            return web.Response(status=400, text=f"bad event body: {exc}\n")
        return web.Response(text="ok\n")

    async def wsevh_handler(self, request: web.Request) -> web.StreamResponse:
        """WebSocket handler for Janus's wsevh (subprotocol ``janus-event-handlers``)."""
        if not self.authorized(request):
            return self._unauthorized()
        ws = web.WebSocketResponse(protocols=(WSEVH_SUBPROTOCOL,), heartbeat=30.0, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        self.stats.ws_connections += 1
        self._sockets.add(ws)
        log.info("janus event intake: wsevh connected from %s", request.remote)
        try:
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                self.stats.ws_messages += 1
                try:
                    await self._ingest(message.data)
                except EventParseError as exc:
                    self.stats.bad_requests += 1
                    log.warning("janus event intake: bad wsevh message: %s", exc)
        finally:
            self._sockets.discard(ws)
        log.info("janus event intake: wsevh from %s closed", request.remote)
        return ws


class BodyTooLargeError(EventParseError):
    """A body with more events than the intake takes at once."""


def _same(a: str, b: str) -> bool:
    # Header values that were not UTF-8 arrive with surrogate escapes: compare their bytes as sent.
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8", "surrogateescape"))
