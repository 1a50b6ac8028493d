"""Typed Janus event-handler events (what ``sampleevh`` POSTs and ``wsevh`` sends).

Every event has the envelope (``emitter``, ``type``, ``subtype``, ``timestamp`` in µs, ``session_id``,
``handle_id``, ``opaque_id``) and keeps its raw ``event`` body; the fields of each type are lifted out of
the body into attributes. Types: 1 session, 2 handle, 4 external, 8 jsep, 16 webrtc, 32 media, 64 plugin,
128 transport, 256 core. An unknown type becomes ``GenericEvent``.

VideoRoom plugin events the recorder acts on get their own models (``VideoRoomPublished`` ...); other
plugin events stay ``PluginEvent``. Consumers match on the classes they know and ignore the rest.

Gotchas seen on Janus 1.1.2 (reference README):
- ``unpublished``, ``leaving``, ``rtp_forward`` and ``stop_rtp_forward`` carry no session_id/handle_id:
  key state on (room, publisher id), not on handles.
- ``unpublished`` arrives twice (the request, then the PeerConnection closing): handle it idempotently.
- Forwarders removed because their publisher left produce no ``stop_rtp_forward``: treat ``unpublished``
  / ``leaving`` as the end of that publisher's forwarders.

``parse_events(body)`` never raises: it returns the events and how many entries were malformed.
"""

from __future__ import annotations

import enum
import json
import logging
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)

from recorder.names import check_janus_id, check_mid

log = logging.getLogger(__name__)

VIDEOROOM_PLUGIN = "janus.plugin.videoroom"

# Room and publisher ids and stream mids become file and folder names: an event whose ids are not
# integers or safe strings is malformed (refused and counted), never acted upon.
RoomId = Annotated[StrictInt | str, AfterValidator(lambda v: check_janus_id(v, "room id"))]
PublisherId = Annotated[StrictInt | str, AfterValidator(lambda v: check_janus_id(v, "publisher id"))]
Mid = Annotated[str, AfterValidator(check_mid)]


class EventType(enum.IntEnum):
    SESSION = 1
    HANDLE = 2
    EXTERNAL = 4
    JSEP = 8
    WEBRTC = 16
    MEDIA = 32
    PLUGIN = 64
    TRANSPORT = 128
    CORE = 256


class EventParseError(ValueError):
    """The body as a whole is not a JSON object or array."""


_ENVELOPE = frozenset(
    {"emitter", "type", "subtype", "timestamp", "session_id", "handle_id", "opaque_id", "event"}
)


class JanusEvent(BaseModel):
    """Base of all events: the envelope plus the raw ``event`` body."""

    model_config = ConfigDict(frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True)

    emitter: str | None = None
    type: int
    subtype: int | None = None
    timestamp: int = 0
    """Microseconds since the epoch (Janus's clock)."""
    session_id: int | None = None
    handle_id: int | None = None
    opaque_id: str | None = None
    event: dict[str, Any]

    @classmethod
    def _bodies(cls, event: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """The dicts whose keys become this model's own fields (first match wins)."""
        return (event,)

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        event = data.get("event")
        if not isinstance(event, dict):
            raise ValueError("'event' must be an object")
        merged = dict(data)
        for body in cls._bodies(event):
            for name, field in cls.model_fields.items():
                key = field.alias or name
                if name in _ENVELOPE or key in merged or name in merged:
                    continue
                if key in body:
                    merged[key] = body[key]
        return merged


class GenericEvent(JanusEvent):
    """An event of a type this module does not model: kept, never acted upon."""


class SessionEvent(JanusEvent):
    """Type 1: a session ``created`` / ``destroyed`` / ``timeout``..."""

    type: Literal[1]
    name: str
    transport: dict[str, Any] | None = None


class HandleEvent(JanusEvent):
    """Type 2: a handle ``attached`` / ``detached`` to a plugin."""

    type: Literal[2]
    name: str
    plugin: str | None = None


class ExternalEvent(JanusEvent):
    """Type 4: pushed through the Admin API (``custom_event``)."""

    type: Literal[4]
    schema_: str | None = Field(default=None, alias="schema")
    data: Any = None


class Jsep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    type: str
    sdp: str = ""


class JsepEvent(JanusEvent):
    """Type 8: an SDP offer/answer, ``owner`` "local" (Janus's) or "remote" (the peer's)."""

    type: Literal[8]
    owner: str
    jsep: Jsep


class WebRtcEvent(JanusEvent):
    """Type 16: ICE state (subtype 1), candidates (2, 3), selected pair (4), DTLS (5), connection (6)."""

    type: Literal[16]
    ice: str | None = None
    local_candidate: str | None = Field(default=None, alias="local-candidate")
    remote_candidate: str | None = Field(default=None, alias="remote-candidate")
    selected_pair: str | None = Field(default=None, alias="selected-pair")
    dtls: str | None = None
    connection: str | None = None
    """"webrtcup" or "hangup"."""
    reason: str | None = None
    stream_id: int | None = None
    component_id: int | None = None


class MediaEvent(JanusEvent):
    """Type 32: receiving state (subtype 1), slow link (2), periodic stats (3)."""

    type: Literal[32]
    media: str | None = None
    mid: str | None = None
    mindex: int | None = None
    codec: str | None = None
    receiving: bool | None = None
    base: int | None = None
    lost: int | None = None
    packets_received: int | None = Field(default=None, alias="packets-received")
    bytes_received: int | None = Field(default=None, alias="bytes-received")


class PluginEvent(JanusEvent):
    """Type 64: something a plugin reported; ``data`` is the plugin's own payload."""

    type: Literal[64]
    plugin: str
    data: dict[str, Any] = {}


class TransportEvent(JanusEvent):
    """Type 128: a transport connection (``data.event`` "connected"/"disconnected")."""

    type: Literal[128]
    transport: str
    id: str | None = None
    data: dict[str, Any] = {}


class CoreEvent(JanusEvent):
    """Type 256: Janus ``started`` (subtype 1, with server ``info``) or ``shutdown`` (subtype 2).
    A "started" means a (re)start: forwarders from before it are gone."""

    type: Literal[256]
    status: str | None = None
    signum: int | None = None
    info: dict[str, Any] | None = None


# -- VideoRoom plugin events ---------------------------------------------------------------------------


class VideoRoomEvent(PluginEvent):
    """A VideoRoom event the recorder acts on; fields lifted from ``data``."""

    name: ClassVar[str]
    room: RoomId

    @classmethod
    def _bodies(cls, event: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        data = event.get("data")
        if not isinstance(data, dict):
            raise ValueError("plugin event without a 'data' object")
        return (event, data)


class PublishedStream(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    """"audio", "video" or "data"."""
    mid: Mid
    mindex: int | None = None
    codec: str | None = None


class VideoRoomJoined(VideoRoomEvent):
    """A participant joined as publisher (not yet publishing)."""

    name = "joined"
    publisher_id: PublisherId = Field(alias="id")
    display: str | None = None
    private_id: int | None = None


class VideoRoomPublished(VideoRoomEvent):
    """A publisher's PeerConnection is up: its streams (mid, type, codec) can be forwarded now."""

    name = "published"
    publisher_id: PublisherId = Field(alias="id")
    display: str | None = None
    streams: list[PublishedStream] = []


class VideoRoomUnpublished(VideoRoomEvent):
    """A publisher stopped publishing (arrives twice; no session/handle ids). Its forwarders are gone."""

    name = "unpublished"
    publisher_id: PublisherId = Field(alias="id")


class VideoRoomLeaving(VideoRoomEvent):
    """A participant left the room (no session/handle ids)."""

    name = "leaving"
    publisher_id: PublisherId = Field(alias="id")
    display: str | None = None


class VideoRoomConfigured(VideoRoomEvent):
    """A publisher (re)configured; the ``data`` dict has whatever changed (bitrate, streams...)."""

    name = "configured"
    publisher_id: PublisherId = Field(alias="id")


class VideoRoomRtpForward(VideoRoomEvent):
    """A forwarder was created (by anyone: ours, or someone else's on the same Janus)."""

    name = "rtp_forward"
    publisher_id: PublisherId
    stream_id: int
    host: str | None = None
    port: int | None = None
    media: str | None = None
    codec: str | None = None
    local_rtcp_port: int | None = None
    remote_rtcp_port: int | None = None
    pt: int | None = None
    ssrc: int | None = None


class VideoRoomStopRtpForward(VideoRoomEvent):
    """A forwarder was stopped by request (not when its publisher left: no event then)."""

    name = "stop_rtp_forward"
    publisher_id: PublisherId
    stream_id: int


class VideoRoomCreated(VideoRoomEvent):
    name = "created"


class VideoRoomDestroyed(VideoRoomEvent):
    """The room was destroyed: all its publishers and forwarders are gone."""

    name = "destroyed"


Event = JanusEvent
"""What ``parse_events`` returns: a ``JanusEvent`` subclass (specific model or ``GenericEvent``)."""

EVENT_TYPES: dict[int, type[JanusEvent]] = {
    EventType.SESSION: SessionEvent,
    EventType.HANDLE: HandleEvent,
    EventType.EXTERNAL: ExternalEvent,
    EventType.JSEP: JsepEvent,
    EventType.WEBRTC: WebRtcEvent,
    EventType.MEDIA: MediaEvent,
    EventType.PLUGIN: PluginEvent,
    EventType.TRANSPORT: TransportEvent,
    EventType.CORE: CoreEvent,
}

VIDEOROOM_EVENTS: dict[str, type[VideoRoomEvent]] = {
    cls.name: cls
    for cls in (
        VideoRoomJoined,
        VideoRoomPublished,
        VideoRoomUnpublished,
        VideoRoomLeaving,
        VideoRoomConfigured,
        VideoRoomRtpForward,
        VideoRoomStopRtpForward,
        VideoRoomCreated,
        VideoRoomDestroyed,
    )
}


def parse_event(entry: Any) -> JanusEvent:
    """One event object as its model. Raises ``ValueError`` (``ValidationError`` included) if malformed."""
    if not isinstance(entry, dict):
        raise ValueError(f"event is not an object: {type(entry).__name__}")
    kind = entry.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ValueError(f"event without an integer 'type': {kind!r}")
    model = EVENT_TYPES.get(kind, GenericEvent)
    if model is PluginEvent:
        event = entry.get("event")
        if isinstance(event, dict) and event.get("plugin") == VIDEOROOM_PLUGIN:
            data = event.get("data")
            name = data.get("event") if isinstance(data, dict) else None
            model = VIDEOROOM_EVENTS.get(name, PluginEvent) if isinstance(name, str) else PluginEvent
    return model.model_validate(entry)


def decode_body(body: bytes | str) -> list[Any]:
    """The entries of an event-handler body (a JSON object or array). Raises ``EventParseError``."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventParseError(f"body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise EventParseError("body is JSON nested too deeply") from None
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        return decoded
    raise EventParseError(f"body is a JSON {type(decoded).__name__}, expected an object or an array")


def parse_entries(entries: list[Any]) -> tuple[list[JanusEvent], int]:
    """Parse decoded entries; malformed ones are counted (and logged at debug level), never raised."""
    events: list[JanusEvent] = []
    malformed = 0
    for entry in entries:
        try:
            events.append(parse_event(entry))
        except (ValueError, ValidationError) as exc:
            malformed += 1
            log.debug("malformed Janus event: %.300s", exc)
        except RecursionError:
            malformed += 1
            log.debug("malformed Janus event: nested too deeply")
    return events, malformed


def parse_events(body: bytes | str) -> tuple[list[JanusEvent], int]:
    """Parse an event-handler body (a JSON object or array of them) into events.

    Returns ``(events, malformed)``: a body that is not JSON at all counts as one malformed entry. Unknown
    types and unknown plugin events come back as ``GenericEvent`` / ``PluginEvent``. Never raises.
    """
    try:
        entries = decode_body(body)
    except EventParseError as exc:
        log.debug("malformed Janus event body: %s", exc)
        return [], 1
    return parse_entries(entries)
