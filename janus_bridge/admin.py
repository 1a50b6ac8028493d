"""Janus Admin API over WebSocket (subprotocol ``janus-admin-protocol``), authenticated by ``admin_secret``.

Used for inspection and reconciliation: which sessions and handles exist, what a handle is (plugin,
VideoRoom publisher state), and plugin requests without a session (``message_plugin``), e.g.
``listforwarders`` after a reconnect. Reconnects like the Janus API client; no session, no keepalive.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from janus_bridge.client import VIDEOROOM_PLUGIN, plugin_data_or_raise
from janus_bridge.errors import JanusProtocolError
from janus_bridge.transport import (
    Backoff,
    JanusTransport,
    JsonObject,
    OnTransport,
)
from janus_bridge.videoroom import PublisherForwarders, RoomId, VideoRoom


class HandleInfo(BaseModel):
    """``handle_info`` answer (``info``); the fields a bridge looks at, everything else kept as extra."""

    model_config = ConfigDict(frozen=True, extra="allow")

    session_id: int
    handle_id: int
    plugin: str | None = None
    opaque_id: str | None = None
    created: int | None = None
    flags: dict[str, Any] = {}
    plugin_specific: dict[str, Any] = {}
    """For a VideoRoom publisher: type, room, id, display, streams (mid, type, codec)..."""
    webrtc: dict[str, Any] = {}


class _PluginChannel:
    """``message_plugin`` as a VideoRoom ``PluginChannel``."""

    def __init__(self, admin: JanusAdminClient, plugin: str) -> None:
        self.admin = admin
        self.plugin = plugin

    async def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.admin.message_plugin(self.plugin, body)


class JanusAdminClient(OnTransport):
    """Admin API client. Every request carries ``admin_secret``; a wrong one raises ``UnauthorizedError``."""

    def __init__(
        self,
        url: str,
        admin_secret: str,
        *,
        request_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        ready_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.admin_secret = admin_secret
        self.transport = JanusTransport(
            url,
            "janus-admin-protocol",
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            ready_timeout=ready_timeout,
            ping_interval=ping_interval,
            backoff=backoff,
            name="janus-admin",
        )

    async def connect(self) -> None:
        """Connect; ``JanusConnectionError`` if not connected within ``ready_timeout`` (keeps trying)."""
        await self.transport.start(wait=True)

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> JanusAdminClient:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def request(self, janus: str, **fields: Any) -> JsonObject:
        """Any Admin API request (``janus`` is its name); returns the whole answer."""
        message = {"janus": janus, "admin_secret": self.admin_secret, **fields}
        return await self.transport.request(message)

    async def ping(self) -> None:
        answer = await self.request("ping")
        if answer.get("janus") != "pong":
            raise JanusProtocolError(f"expected pong, got {answer!r}")

    async def list_sessions(self) -> list[int]:
        return _int_list(await self.request("list_sessions"), "sessions")

    async def list_handles(self, session_id: int) -> list[int]:
        return _int_list(await self.request("list_handles", session_id=session_id), "handles")

    async def handle_info(self, session_id: int, handle_id: int) -> HandleInfo:
        answer = await self.request("handle_info", session_id=session_id, handle_id=handle_id)
        info = answer.get("info")
        try:
            return HandleInfo.model_validate(info)
        except ValidationError as exc:
            raise JanusProtocolError(f"unexpected handle_info answer: {exc}") from exc

    async def message_plugin(self, plugin: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """A plugin request without a session; returns the plugin's answer (``response``), raising the
        typed plugin error (``VideoRoomError`` for the VideoRoom) on ``error_code``."""
        answer = await self.request("message_plugin", plugin=plugin, request=dict(request))
        return plugin_data_or_raise(plugin, answer.get("response"))

    def videoroom(self) -> VideoRoom:
        """VideoRoom requests over ``message_plugin`` (same typed API as over a Janus API handle)."""
        return VideoRoom(_PluginChannel(self, VIDEOROOM_PLUGIN))

    async def list_forwarders(self, room: RoomId, secret: str | None = None) -> list[PublisherForwarders]:
        """``listforwarders`` via ``message_plugin``: what Janus forwards now, for reconciliation."""
        return await self.videoroom().list_forwarders(room, secret)


def _int_list(answer: JsonObject, key: str) -> list[int]:
    values = answer.get(key)
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise JanusProtocolError(f"expected a list of ids in {key!r}, got {answer!r}")
    return list(values)
