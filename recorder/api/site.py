"""`HttpSite`: the TCP site `callvault serve` listens on, aiohttp's HTTP server with the limits of
ApiSettings (request line and header sizes, header timeout, open connections).

    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = HttpSite(runner, host, port, settings.api)
    await site.start()                    # runner.cleanup() stops it, like any aiohttp site

Why a site of its own rather than `web.TCPSite`:

- aiohttp answers a request it cannot parse (request line or header too long, too many headers, malformed)
  from `RequestHandler.handle_error`, before routing: no middleware ever sees it (aio-libs/aiohttp#3287,
  #9882), so its plain-text answer cannot be turned into a problem there. This site creates the
  connections' protocol itself, a `web.RequestHandler` subclass whose `handle_error` answers
  `application/problem+json` (and echoes nothing of the request, unlike aiohttp's text).
- aiohttp has no limit on open connections. This site counts them; beyond `api.max_connections` a
  connection gets a `503` problem (`Retry-After`) and is closed, without ever reaching aiohttp.

The header timeout is aiohttp's own `keepalive_timeout`: the deadline, counted from the connection's start
or its previous response, by which a whole request line and headers must have arrived (aiohttp closes the
connection at that deadline whatever part of a request head came in). The body timeout is the API's
(`Registry`, api.body_timeout): aiohttp has none.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from yarl import URL

from recorder.api.problems import ApiError, is_api_path, problem_body, problem_response
from recorder.api.settings import ApiSettings

log = logging.getLogger(__name__)

LINGERING_SECONDS = 2.0
"""After answering a request whose body is still arriving, read (and drop) it this long before closing
(aiohttp's default is 10 s: a slow client would hold its connection that much longer)."""
REFUSED_LINGER_SECONDS = 1.0
"""A refused connection stays open this long after its 503, so the client reads it rather than a reset."""
REFUSED_LOG_INTERVAL = 10.0


class HttpSite(web.BaseSite):
    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: ApiSettings,
        *,
        backlog: int = 128,
        **handler_options: Any,
    ) -> None:
        """`handler_options`: more options of aiohttp's RequestHandler (`access_log_class`...). The site
        makes the connections' protocol itself: what was given to the runner for it does not reach it."""
        super().__init__(runner, backlog=backlog)
        self._web_runner = runner
        self._host = host
        self._port = port
        self._listen_backlog = backlog
        self.limits = limits
        self._handler_options = handler_options
        self._listener: asyncio.Server | None = None
        self._open: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._refusing: weakref.WeakSet[_Refused] = weakref.WeakSet()
        self.refused = 0
        """Connections refused so far (api.max_connections reached)."""
        self._refused_logged = 0.0

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host or "0.0.0.0", port=self.port))

    @property
    def port(self) -> int:
        """The port listened on (the one bound when asked for port 0)."""
        if self._listener is not None and self._listener.sockets:
            return int(self._listener.sockets[0].getsockname()[1])
        return self._port

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def handler_options(self) -> dict[str, Any]:
        """Options of aiohttp's RequestHandler (the HTTP/1.1 protocol of one connection)."""
        return {
            "keepalive_timeout": self.limits.header_timeout,
            "max_line_size": self.limits.max_request_line,
            "max_field_size": self.limits.max_header_size,
            "max_headers": self.limits.max_headers,
            "lingering_time": LINGERING_SECONDS,
            **self._handler_options,
        }

    async def start(self) -> None:
        await super().start()
        server = self._web_runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting the site")
        loop = asyncio.get_running_loop()
        options = self.handler_options()

        def connection() -> asyncio.Protocol:
            if len(self._open) >= self.limits.max_connections:
                self._count_refused()
                refused = _Refused(self.limits.max_connections)
                self._refusing.add(refused)
                return refused
            handler = _Connection(self, server, loop=loop, **options)
            self._open.add(handler)
            return handler

        self._listener = await loop.create_server(
            connection, self._host, self._port, backlog=self._listen_backlog
        )

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()  # stop accepting; runner.cleanup() then closes the connections served
        for refused in list(self._refusing):
            refused.close()
        await super().stop()

    def _closed(self, handler: _Connection) -> None:
        self._open.discard(handler)

    def _count_refused(self) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._refused_logged >= REFUSED_LOG_INTERVAL:
            self._refused_logged = now
            log.warning(
                "HTTP: %d connections open, the limit (api.max_connections); refusing new ones (%d so far)",
                len(self._open),
                self.refused,
            )


class _Connection(web.RequestHandler):
    """aiohttp's protocol for one connection; counted by its site, and its errors are problems."""

    def __init__(self, site: HttpSite, manager: web.Server, **options: Any) -> None:
        super().__init__(manager, **options)
        self.callvault_site = site

    def connection_lost(self, exc: BaseException | None) -> None:
        self.callvault_site._closed(self)
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a request it could not parse (before routing: no path is known) or, on an API
        path, to an exception no middleware handled: a problem, and the connection is closed."""
        unparsed = isinstance(exc, HttpProcessingError)
        if not unparsed and not is_api_path(request.path):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:  # what aiohttp does: a response was started, none can follow
            raise ConnectionError("the response was already started: no problem can be sent")
        if unparsed:
            assert isinstance(exc, HttpProcessingError)
            error = self._unparsed(status, exc)
            log.debug("HTTP: refused a request from %s: %s", request.remote, error.detail)
        else:
            log.error("%s %s failed", request.method, request.path, exc_info=exc)
            error = ApiError(status, "internal error; see the service log")
        response = problem_response(None if unparsed else request, error)
        response.force_close()
        return response

    def _unparsed(self, status: int, exc: HttpProcessingError) -> ApiError:
        # The parser's own message quotes the offending bytes (a header could be a key): never echoed.
        if isinstance(exc, LineTooLong):
            return ApiError(
                status,
                f"request line longer than {self.max_line_size} bytes or a header longer than"
                f" {self.max_field_size} bytes (api.max_request_line, api.max_header_size)",
                "line-too-long",
            )
        if "too many headers" in str(exc.message).lower():
            return ApiError(
                status, f"more than {self.max_headers} headers (api.max_headers)", "too-many-headers"
            )
        return ApiError(status, f"malformed HTTP request ({type(exc).__name__})", "malformed-request")


class _Refused(asyncio.Protocol):
    """A connection beyond api.max_connections: answered 503 at once and closed, never parsed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._transport: asyncio.Transport | None = None
        self._closing: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        error = ApiError(
            503,
            f"too many open connections (api.max_connections = {self.limit}); retry later",
            "too-many-connections",
        )
        body = problem_body(error, None)
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            "Content-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Retry-After: 1\r\n"
            "Connection: close\r\n\r\n"
        )
        transport.write(head.encode() + body)
        if transport.can_write_eof():
            transport.write_eof()
        self._closing = asyncio.get_running_loop().call_later(REFUSED_LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # answered already: whatever the client sends is dropped

    def eof_received(self) -> bool | None:
        self.close()
        return None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closing is not None:
            self._closing.cancel()
