"""VideoRoom plugin requests with typed models: rooms, participants and RTP forwarders.

``VideoRoom`` works over anything that sends a plugin request and returns the plugin's data (raising the
typed ``VideoRoomError`` on ``error_code``): a Janus API handle (``JanusClient.videoroom()``) or the Admin
API's ``message_plugin`` (``JanusAdminClient.videoroom()``).

Secrets: ``secret`` is the room's secret (create/destroy/edit, rtp_forward, listforwarders,
stop_rtp_forward); ``admin_key`` is the plugin's ``admin_key``, needed to create rooms when configured and
for rtp_forward/stop_rtp_forward when the plugin has ``lock_rtp_forward = true``.

SRTP forwarders: a ``ForwardStream`` with an ``srtp`` key is forwarded as SRTP (``srtp_suite`` and
``srtp_crypto`` of ``rtp_forward``). Janus takes one crypto per request, for all its streams, so streams
with different keys go in separate requests (all or nothing still: a later failure stops what earlier
ones created). Janus protects RTP only; RTCP to and from ``local_rtcp_port`` stays plain. The key is
sent to Janus and nowhere else: no log line or error here carries it (Janus itself logs it at its
``debug_level`` 5 and above: keep Janus below that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from janus_bridge.errors import (
    ForwarderNotCreatedError,
    JanusConnectionError,
    JanusError,
    JanusProtocolError,
)
from recorder.crypto.srtp import SrtpKey

M = TypeVar("M", bound=BaseModel)

RoomId = int | str
"""Room ids are integers unless the plugin has ``string_ids = true``."""
ParticipantId = int | str


class PluginChannel(Protocol):
    """Where VideoRoom requests go: returns the plugin's data or raises its typed error."""

    async def request(self, body: Mapping[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class ForwardStream:
    """One publisher stream to forward as RTP (SRTP with ``srtp``): its ``mid``, the destination
    ``port``, optionally an ``rtcp_port`` on which we accept RTCP (Janus then relays our PLI/FIR to the
    publisher), and payload type / SSRC overrides (Janus keeps the publisher's by default)."""

    mid: str
    port: int = Field(ge=1, le=65535)
    rtcp_port: int | None = Field(default=None, ge=1, le=65535)
    pt: int | None = Field(default=None, ge=0, le=127)
    ssrc: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)
    simulcast: bool | None = None
    """For a stream the publisher simulcasts (VP8 or H.264 with rids or an SSRC group SIM): forward it
    through a simulcast context, which targets the highest substream, falls back to a lower one 0.25 s
    after the one forwarded stopped, and switches only at a keyframe of the substream it switches to.
    Janus 1.1 does not ask the publisher for that keyframe on a forwarder's behalf: send a PLI to the
    forwarder's ``local_rtcp_port``. Without the flag Janus forwards substream 0 only; with it, a stream
    that does not simulcast is not forwarded at all."""
    srtp: SrtpKey | None = None
    """Forward as SRTP under this key (its ``repr`` hides the key)."""

    def to_request(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mid": self.mid, "port": self.port}
        for key in ("rtcp_port", "pt", "ssrc", "simulcast"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Forwarder(_Answer):
    """An RTP forwarder as Janus reports it. ``mid`` is filled in by ``rtp_forward`` from the request
    (Janus's answer has no mid; forwarders are matched to requested streams by port)."""

    stream_id: int
    host: str
    port: int
    type: str
    """Media kind: "audio", "video" or "data"."""
    local_rtcp_port: int | None = None
    """Janus's port for RTCP from us (PLI/FIR), when ``rtcp_port`` was requested."""
    remote_rtcp_port: int | None = None
    pt: int | None = None
    ssrc: int | None = None
    substream: int | None = None
    srtp: bool | None = None
    mid: str | None = None


class PublisherForwarders(_Answer):
    publisher_id: ParticipantId
    display: str | None = None
    forwarders: list[Forwarder] = []


class Participant(_Answer):
    id: ParticipantId
    display: str | None = None
    publisher: bool = False
    """True once the participant's PeerConnection is up and publishing."""
    talking: bool | None = None


class RoomInfo(_Answer):
    room: RoomId
    description: str | None = None
    num_participants: int = 0
    max_publishers: int | None = None
    pin_required: bool | None = None
    is_private: bool | None = None
    audiocodec: str | None = None
    videocodec: str | None = None
    record: bool | None = None


class VideoRoom:
    """VideoRoom requests the bridge and ops need. Every Janus error raises its typed error."""

    def __init__(self, handle: PluginChannel) -> None:
        self.handle = handle

    async def _call(self, request: str, **fields: Any) -> dict[str, Any]:
        body = {"request": request, **{k: v for k, v in fields.items() if v is not None}}
        return await self.handle.request(body)

    # -- rooms ---------------------------------------------------------------------------------------

    async def create_room(
        self,
        room: RoomId | None = None,
        *,
        description: str | None = None,
        secret: str | None = None,
        pin: str | None = None,
        is_private: bool | None = None,
        publishers: int | None = None,
        bitrate: int | None = None,
        audiocodec: str | None = None,
        videocodec: str | None = None,
        permanent: bool = False,
        admin_key: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> RoomId:
        """Create a room (Janus picks the id when ``room`` is None); returns its id.
        ``options`` passes further ``create`` fields (``record``, ``rec_dir``, ``fir_freq``...)."""
        extra = dict(options or {})
        data = await self._call(
            "create",
            room=room,
            description=description,
            secret=secret,
            pin=pin,
            is_private=is_private,
            publishers=publishers,
            bitrate=bitrate,
            audiocodec=audiocodec,
            videocodec=videocodec,
            permanent=permanent,
            admin_key=admin_key,
            **extra,
        )
        return _expect(data, "created", "room", (int, str))  # type: ignore[no-any-return]

    async def destroy_room(self, room: RoomId, *, secret: str | None = None, permanent: bool = False) -> None:
        data = await self._call("destroy", room=room, secret=secret, permanent=permanent)
        _expect(data, "destroyed", "room", (int, str))

    async def exists(self, room: RoomId) -> bool:
        data = await self._call("exists", room=room)
        return bool(_expect(data, "success", "exists", bool))

    async def list_rooms(self, *, admin_key: str | None = None) -> list[RoomInfo]:
        """Rooms visible to us (private ones too with the ``admin_key``)."""
        data = await self._call("list", admin_key=admin_key)
        return _models(RoomInfo, _expect(data, "success", "list", list))

    # -- participants and forwarders ---------------------------------------------------------------------

    async def list_participants(self, room: RoomId) -> list[Participant]:
        data = await self._call("listparticipants", room=room)
        return _models(Participant, _expect(data, "participants", "participants", list))

    async def list_forwarders(self, room: RoomId, secret: str | None = None) -> list[PublisherForwarders]:
        """Every publisher of ``room`` that has forwarders, with them (``secret`` is required by Janus)."""
        data = await self._call("listforwarders", room=room, secret=secret)
        return parse_forwarders(data)

    async def rtp_forward(
        self,
        room: RoomId,
        publisher_id: ParticipantId,
        host: str,
        streams: Sequence[ForwardStream],
        *,
        secret: str | None = None,
        admin_key: str | None = None,
    ) -> list[Forwarder]:
        """Forward a publisher's streams to ``host`` as RTP, or SRTP for those with a key (multistream
        form); one forwarder per requested stream, in request order, ``mid`` filled in.

        Janus skips a mid the publisher does not have and still answers success: this checks the answer and
        raises ``ForwarderNotCreatedError`` naming the missing mids, after stopping the forwarders the same
        request did create (all or nothing).
        """
        if not streams:
            raise ValueError("rtp_forward needs at least one stream")
        ports = [s.port for s in streams]
        if len(set(ports)) != len(ports):
            raise ValueError(f"rtp_forward: ports must be distinct per stream, got {ports}")
        groups: dict[int, list[ForwardStream]] = {}  # one request per key (Janus: one crypto per request)
        for stream in streams:
            groups.setdefault(id(stream.srtp), []).append(stream)
        created: list[Forwarder] = []
        try:
            for group in groups.values():
                key = group[0].srtp
                data = await self._call(
                    "rtp_forward",
                    room=room,
                    publisher_id=publisher_id,
                    host=host,
                    secret=secret,
                    admin_key=admin_key,
                    streams=[s.to_request() for s in group],
                    srtp_suite=key.suite.tag_bits if key is not None else None,
                    srtp_crypto=key.inline() if key is not None else None,
                )
                answered = _models(Forwarder, _expect(data, "rtp_forward", "forwarders", list))
                created.extend(answered)
                if key is not None and any(f.srtp is not True for f in answered):
                    raise JanusProtocolError(
                        "rtp_forward: Janus answered a plain forwarder to an SRTP request"
                    )
        except BaseException:
            await self._stop_all(room, publisher_id, created, secret, admin_key)
            raise
        by_port = {f.port: f for f in created}
        result: list[Forwarder] = []
        missing: list[str] = []
        for stream in streams:
            forwarder = by_port.pop(stream.port, None)
            if forwarder is None:
                missing.append(stream.mid)
            else:
                result.append(forwarder.model_copy(update={"mid": stream.mid}))
        if missing:
            stopped = await self._stop_all(room, publisher_id, created, secret, admin_key)
            raise ForwarderNotCreatedError(missing, stopped)
        return result

    async def _stop_all(
        self,
        room: RoomId,
        publisher_id: ParticipantId,
        forwarders: Sequence[Forwarder],
        secret: str | None,
        admin_key: str | None,
    ) -> list[int]:
        """Stop forwarders one ``rtp_forward`` call created (it is all or nothing); their stream ids."""
        stopped: list[int] = []
        for forwarder in forwarders:
            try:
                await self.stop_rtp_forward(
                    room, publisher_id, forwarder.stream_id, secret=secret, admin_key=admin_key
                )
                stopped.append(forwarder.stream_id)
            except (JanusError, JanusConnectionError, JanusProtocolError, TimeoutError):
                pass  # the publisher may have gone meanwhile; nothing else to undo
        return stopped

    async def stop_rtp_forward(
        self,
        room: RoomId,
        publisher_id: ParticipantId,
        stream_id: int,
        *,
        secret: str | None = None,
        admin_key: str | None = None,
    ) -> None:
        """Stop one forwarder. Unknown ``stream_id``: ``NoSuchFeedError`` (428, "No such stream")."""
        data = await self._call(
            "stop_rtp_forward",
            room=room,
            publisher_id=publisher_id,
            stream_id=stream_id,
            secret=secret,
            admin_key=admin_key,
        )
        _expect(data, "stop_rtp_forward", "stream_id", int)


def parse_forwarders(data: Mapping[str, Any]) -> list[PublisherForwarders]:
    """The ``listforwarders`` answer (``{"videoroom": "forwarders", "publishers": [...]}``) as models."""
    return _models(PublisherForwarders, _expect(data, "forwarders", "publishers", list))


def _expect(data: Mapping[str, Any], kind: str, key: str, types: type | tuple[type, ...]) -> Any:
    if data.get("videoroom") != kind or not isinstance(data.get(key), types):
        raise JanusProtocolError(f"videoroom: expected {kind!r} with {key!r}, got {dict(data)!r}")
    return data[key]


def _models(model: type[M], items: list[Any]) -> list[M]:
    try:
        return [model.model_validate(item) for item in items]
    except ValidationError as exc:
        raise JanusProtocolError(f"videoroom: unexpected {model.__name__} shape: {exc}") from exc
