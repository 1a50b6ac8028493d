"""Janus API client: one session over a reconnecting WebSocket, kept alive, with plugin handles.

    async with JanusClient("ws://127.0.0.1:8188") as janus:     # connects, creates the session
        room = await janus.videoroom()                          # attaches janus.plugin.videoroom
        forwarders = await room.rtp_forward(1234, publisher, "127.0.0.1", [ForwardStream("0", 5000)],
                                            secret=ROOM_SECRET, admin_key=ADMIN_KEY)

Reconnection: when the WebSocket drops (Janus restarted, network), the client reconnects with backoff,
creates a new session and re-attaches every handle it gave out (same Python objects, new handle ids),
then reports CONNECTED with ``generation`` incremented. Janus destroys a session whose transport went
away, so nothing survives on the Janus side: a bridge reconciles (``list_forwarders``) on each CONNECTED.
Requests made while disconnected raise ``JanusConnectionError`` at once; they are never queued.

Keepalive: ``{"janus": "keepalive"}`` every ``keepalive_interval`` s (keep it below Janus's
``session_timeout``, 60 s by default), answered by a bare ack. A missing session (458), a ``timeout``
event or an unanswered keepalive drop the connection so the session is rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict

from janus_bridge.errors import (
    JanusApiError,
    JanusConnectionError,
    JanusProtocolError,
    PluginError,
    SessionNotFoundError,
    videoroom_error,
)
from janus_bridge.transport import (
    Backoff,
    ConnectionState,
    JanusTransport,
    JsonObject,
    OnTransport,
)
from janus_bridge.videoroom import VideoRoom

log = logging.getLogger(__name__)

VIDEOROOM_PLUGIN = "janus.plugin.videoroom"
MessageListener = Callable[[JsonObject], None]


class PluginResponse(BaseModel):
    """A plugin's answer: ``data`` (``plugindata.data``) and, for negotiations, a ``jsep``."""

    model_config = ConfigDict(frozen=True)

    plugin: str
    data: dict[str, Any]
    jsep: dict[str, Any] | None = None


def plugin_data_or_raise(plugin: str, data: Any) -> dict[str, Any]:
    """Return the plugin's data, or raise its typed error when it carries ``error_code``."""
    if not isinstance(data, dict):
        raise JanusProtocolError(f"{plugin}: plugin data is not an object: {data!r}")
    code = data.get("error_code")
    if code is not None:
        reason = data.get("error")
        reason = reason if isinstance(reason, str) else None
        if not isinstance(code, int):
            raise JanusProtocolError(f"{plugin}: non-integer error_code {code!r}")
        if plugin == VIDEOROOM_PLUGIN:
            raise videoroom_error(code, reason)
        raise PluginError(code, reason)
    return data


class PluginHandle:
    """A handle on one plugin in the client's session. Survives reconnects (re-attached, new id)."""

    def __init__(self, client: JanusClient, plugin: str, opaque_id: str | None = None) -> None:
        self.client = client
        self.plugin = plugin
        self.opaque_id = opaque_id
        self.handle_id: int | None = None
        self._detached = False

    def __repr__(self) -> str:
        return f"PluginHandle({self.plugin!r}, handle_id={self.handle_id})"

    async def _attach(self) -> None:
        message: dict[str, Any] = {"janus": "attach", "plugin": self.plugin}
        if self.opaque_id is not None:
            message["opaque_id"] = self.opaque_id
        answer = await self.client._session_request(message)
        self.handle_id = _data_id(answer)

    async def message(
        self,
        body: Mapping[str, Any],
        jsep: Mapping[str, Any] | None = None,
    ) -> PluginResponse:
        """Send a request to the plugin and return its answer.

        Synchronous requests are answered with ``success``; asynchronous ones (join, publish...) with an
        ack and then an ``event`` carrying the same transaction: both come back here. Plugin errors raise
        their typed error (``VideoRoomError`` subclasses for the VideoRoom).
        """
        if self._detached:
            raise JanusConnectionError(f"{self!r} is detached")
        if self.handle_id is None:
            raise JanusConnectionError(f"{self!r} is not attached (not connected)")
        message: dict[str, Any] = {"janus": "message", "handle_id": self.handle_id, "body": dict(body)}
        if jsep is not None:
            message["jsep"] = dict(jsep)
        answer = await self.client._session_request(message)
        plugindata = answer.get("plugindata")
        if not isinstance(plugindata, dict):
            raise JanusProtocolError(f"{self.plugin}: answer without plugindata: {answer!r}")
        data = plugin_data_or_raise(self.plugin, plugindata.get("data"))
        jsep_answer = answer.get("jsep")
        return PluginResponse(
            plugin=str(plugindata.get("plugin", self.plugin)),
            data=data,
            jsep=jsep_answer if isinstance(jsep_answer, dict) else None,
        )

    async def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``message()`` for plugin requests without JSEP; returns the plugin's data."""
        return (await self.message(body)).data

    async def detach(self) -> None:
        """Detach from the plugin; the client stops re-attaching this handle."""
        self._detached = True
        self.client._handles.discard(self)
        handle_id, self.handle_id = self.handle_id, None
        if handle_id is not None and self.client.state is ConnectionState.CONNECTED:
            with contextlib.suppress(JanusApiError, JanusConnectionError):
                await self.client._session_request({"janus": "detach", "handle_id": handle_id})


class JanusClient(OnTransport):
    """Janus API over WebSocket (subprotocol ``janus-protocol``): session, keepalive, plugin handles."""

    def __init__(
        self,
        url: str,
        *,
        api_secret: str | None = None,
        token: str | None = None,
        keepalive_interval: float = 25.0,
        request_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        ready_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.api_secret = api_secret
        self.token = token
        self.keepalive_interval = keepalive_interval
        self.session_id: int | None = None
        self._handles: set[PluginHandle] = set()
        self._videoroom: VideoRoom | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._message_listeners: list[MessageListener] = []
        self.transport = JanusTransport(
            url,
            "janus-protocol",
            on_open=self._on_open,
            on_message=self._on_message,
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            ready_timeout=ready_timeout,
            ping_interval=ping_interval,
            backoff=backoff,
            name="janus",
        )
        self.transport.add_state_listener(self._on_state)

    # -- connection state ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.transport.url

    def add_message_listener(self, listener: MessageListener) -> None:
        """``listener(message)`` for every message Janus pushes without a pending transaction
        (``event``, ``webrtcup``, ``hangup``, ``detached``, ``timeout``...)."""
        self._message_listeners.append(listener)

    async def connect(self) -> None:
        """Connect and create the session; ``JanusConnectionError`` if not ready within ``ready_timeout``
        (the client keeps trying in the background until ``close()``)."""
        await self.transport.start(wait=True)

    async def close(self) -> None:
        """Destroy the session (best effort) and close the connection for good."""
        session_id = self.session_id
        if session_id is not None and self.state is ConnectionState.CONNECTED:
            with contextlib.suppress(JanusApiError, JanusConnectionError):
                destroy = self._auth({"janus": "destroy", "session_id": session_id})
                await self.transport.request(destroy, wait=2.0)
        self._stop_keepalive()
        await self.transport.close()
        self.session_id = None

    async def __aenter__(self) -> JanusClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- requests ------------------------------------------------------------------------------------

    async def info(self) -> JsonObject:
        """Janus ``info`` (``server_info``): version, plugins, transports, event handlers."""
        return await self.transport.request(self._auth({"janus": "info"}))

    async def attach(self, plugin: str, *, opaque_id: str | None = None) -> PluginHandle:
        """Attach to ``plugin``; the handle is re-attached automatically after reconnects."""
        handle = PluginHandle(self, plugin, opaque_id)
        self._require_connected()
        await handle._attach()
        self._handles.add(handle)
        return handle

    async def videoroom(self) -> VideoRoom:
        """The client's shared VideoRoom handle, attached on first use (and re-attached on reconnects)."""
        if self._videoroom is None or self._videoroom.handle not in self._handles:
            self._videoroom = VideoRoom(await self.attach(VIDEOROOM_PLUGIN))
        return self._videoroom

    def _require_connected(self) -> None:
        if self.state is not ConnectionState.CONNECTED or self.session_id is None:
            raise JanusConnectionError(f"janus: not connected to {self.url} (state {self.state})")

    def _auth(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.api_secret is not None:
            message["apisecret"] = self.api_secret
        if self.token is not None:
            message["token"] = self.token
        return message

    async def _session_request(self, message: dict[str, Any], *, accept_ack: bool = False) -> JsonObject:
        if self.session_id is None:
            raise JanusConnectionError(f"janus: no session on {self.url} (state {self.state})")
        message["session_id"] = self.session_id
        return await self.transport.request(self._auth(message), accept_ack=accept_ack)

    # -- session lifecycle ---------------------------------------------------------------------------

    async def _on_open(self) -> None:
        """After each (re)connect: new session, handles re-attached, keepalive started."""
        self._stop_keepalive()
        self.session_id = None
        for handle in self._handles:
            handle.handle_id = None
        answer = await self.transport.request(self._auth({"janus": "create"}))
        self.session_id = _data_id(answer)
        for handle in list(self._handles):
            await handle._attach()
        self._keepalive_task = asyncio.create_task(self._keepalive(self.session_id), name="janus-keepalive")
        log.info("janus: session %s on %s, %d handle(s)", self.session_id, self.url, len(self._handles))

    def _on_state(self, state: ConnectionState) -> None:
        if state is not ConnectionState.CONNECTED:
            self._stop_keepalive()
            if state is not ConnectionState.CONNECTING:
                self.session_id = None
                for handle in self._handles:
                    handle.handle_id = None

    def _stop_keepalive(self) -> None:
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _keepalive(self, session_id: int) -> None:
        while True:
            await asyncio.sleep(self.keepalive_interval)
            if self.session_id != session_id:
                return
            try:
                await self.transport.request(
                    self._auth({"janus": "keepalive", "session_id": session_id}), accept_ack=True
                )
            except SessionNotFoundError:
                log.warning("janus: session %s is gone; reconnecting to rebuild it", session_id)
                self.transport.reconnect()
                return
            except JanusConnectionError as exc:  # includes timeouts
                log.warning("janus: keepalive for session %s failed (%r); reconnecting", session_id, exc)
                self.transport.reconnect()
                return
            except JanusApiError as exc:
                log.error("janus: keepalive refused: %s", exc)

    def _on_message(self, message: JsonObject) -> None:
        kind = message.get("janus")
        if kind == "timeout" and message.get("session_id") == self.session_id:
            log.warning("janus: session %s timed out; reconnecting to rebuild it", self.session_id)
            self.transport.reconnect()
        for listener in list(self._message_listeners):
            try:
                listener(message)
            except Exception:
                log.exception("janus: message listener failed")


def _data_id(answer: JsonObject) -> int:
    data = answer.get("data")
    ident = data.get("id") if isinstance(data, dict) else None
    if answer.get("janus") != "success" or not isinstance(ident, int):
        raise JanusProtocolError(f"expected success with data.id, got {answer!r}")
    return ident
