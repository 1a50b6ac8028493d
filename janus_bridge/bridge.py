"""The Janus bridge: Janus events in, "record this stream" commands out.

For a recorded room, every `published` publisher gets ports from the RecordingManager and a
`rtp_forward` of each audio/video stream to them (RTCP port on video so our PLIs reach the publisher).
`unpublished` / `leaving` finish the publisher's tracks (both arrive, `unpublished` twice: idempotent);
`destroyed`, or the room staying empty for `empty_room_grace` seconds, finishes the room's recording.
After every (re)connection to Janus the bridge reconciles: forwarders that point at our address but
that we do not know are stopped, and publishers whose forwarders Janus no longer has (Janus restarted)
are finished, so their return starts fresh tracks in the same recording, the gap in between visible.

Events are hints, not orders: whoever reaches the event endpoint with its token could forge them. Before
starting a publisher's recording the bridge checks with Janus's API that the publisher is in the room;
before finishing a publisher's tracks, that Janus no longer has it publishing; before finishing a room
on `destroyed`, that the room no longer exists. What events leave behind is bounded (`hints.Recent`).

Payload types encode the codec (VP8 96, VP9 98, H.264 102, Opus 111 by default), so a forwarder
listed by Janus tells what it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from janus_bridge.client import JanusClient
from janus_bridge.errors import JanusConnectionError, JanusError, JanusProtocolError, NoSuchRoomError
from janus_bridge.events import (
    JanusEvent,
    JsepEvent,
    VideoRoomDestroyed,
    VideoRoomJoined,
    VideoRoomLeaving,
    VideoRoomPublished,
    VideoRoomUnpublished,
)
from janus_bridge.hints import Recent
from janus_bridge.transport import ConnectionState
from janus_bridge.videoroom import ForwardStream, Participant, VideoRoom
from recorder.crypto.srtp import SrtpKey
from recorder.errors import RecordingRefusedError
from recorder.models import Codec
from recorder.names import SAFE_MID
from recorder.recording import ParticipantInfo
from recorder.service.manager import RecordingManager, StreamRequest
from recorder.service.settings import JanusSettings

log = logging.getLogger(__name__)

# Whatever a Janus request can fail with: its own errors, a lost connection, an answer we cannot read.
JANUS_FAILURES = (JanusError, JanusConnectionError, JanusProtocolError)

CODECS = {"vp8": Codec.VP8, "vp9": Codec.VP9, "h264": Codec.H264, "opus": Codec.OPUS}

MAX_PUBLISHERS = 10_000
"""Publishers remembered (recorded rooms or not) so recording can start mid-call; the oldest go first."""
MAX_PENDING_JOINS = 4_096
"""Joined publishers waiting for Janus's SDP answer; forgotten after PENDING_JOIN_AGE seconds."""
PENDING_JOIN_AGE = 120.0
CONFIRM_DELAYS = (0.0, 0.25, 0.5)
"""Seconds between checks that Janus really stopped a publisher or destroyed a room before acting."""
SIMULCAST_CODECS = frozenset({"vp8", "h264"})
"""What Janus 1.1 simulcasts. A simulcast forwarder of another codec's stream would forward nothing."""


class JanusBridge:
    def __init__(
        self,
        manager: RecordingManager,
        settings: JanusSettings,
        client: JanusClient,
        *,
        empty_room_grace: float = 3.0,
        restart_grace: float = 60.0,
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.client = client
        self.empty_room_grace = empty_room_grace
        self.restart_grace = restart_grace
        self.forwarders: dict[tuple[str, str], list[int]] = {}  # (room, publisher) -> Janus stream ids
        self._publishers: Recent[tuple[str, str], VideoRoomPublished] = Recent(MAX_PUBLISHERS)
        """Publishing participants of every room, recorded or not, so recording can start mid-call."""
        self._joined: Recent[int, VideoRoomJoined] = Recent(MAX_PENDING_JOINS, PENDING_JOIN_AGE)
        """Publishers by Janus handle id, so Janus's SDP answer to them can be matched to a room."""
        self._join_handles: Recent[tuple[str, str], int] = Recent(MAX_PENDING_JOINS, PENDING_JOIN_AGE)
        self._offered_simulcast: Recent[int, frozenset[str]] = Recent(MAX_PENDING_JOINS, PENDING_JOIN_AGE)
        """Mids a publisher's offer (a JSEP event of owner "remote") simulcasts, by handle id: an SSRC
        group SIM is only in the offer, not in Janus's answer."""
        self.unconfirmed = 0
        """Events Janus's API did not confirm (forged, or stale): counted and ignored."""
        self.room_policy: dict[str, bool] = {}
        """Per-room overrides of `settings.record_rooms` (the control API sets them)."""
        self.errors = 0
        self._closers: dict[str, asyncio.Task[None]] = {}
        self._reconciler: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def publishers(self) -> Mapping[str, Mapping[str, VideoRoomPublished]]:
        """Known publishers by room, then by publisher id (a snapshot)."""
        rooms: dict[str, dict[str, VideoRoomPublished]] = {}
        for (room, publisher), event in self._publishers.items():
            rooms.setdefault(room, {})[publisher] = event
        return rooms

    def counters(self) -> dict[str, int]:
        return {
            "errors": self.errors,
            "forwarded_publishers": len(self.forwarders),
            "unconfirmed_events": self.unconfirmed,
            "known_publishers": len(self._publishers),
            "forgotten_publishers": self._publishers.evicted + self._joined.evicted,
        }

    @property
    def connected(self) -> bool:
        return self.client.state is ConnectionState.CONNECTED

    def problem(self) -> str | None:
        """None while connected to Janus; else what /readyz says, with the last error."""
        if self.connected:
            return None
        error = self.client.last_error
        return "not connected to Janus" + (f" ({error})" if error is not None else "")

    async def start(self) -> None:
        """Start following Janus; returns at once even when Janus is down (the client keeps retrying)."""
        suite = self.settings.srtp_suite()
        log.info(
            "forward leg to %s: %s",
            self.settings.forward_host,
            f"SRTP ({suite.value}, a fresh key per forwarder)" if suite is not None else "plain RTP",
        )
        self.client.add_state_listener(self._on_state)
        try:
            await self.client.connect()
        except (*JANUS_FAILURES, TimeoutError) as exc:
            log.info(
                "Janus at %s is not reachable yet (%s); retrying in the background", self.settings.ws_url, exc
            )

    async def close(self) -> None:
        for task in [*self._closers.values(), *([self._reconciler] if self._reconciler else [])]:
            task.cancel()
        await self.client.close()

    # -- events ----------------------------------------------------------------------------------------

    async def on_events(self, events: Sequence[JanusEvent]) -> None:
        """EventIntake callback: act on the VideoRoom events of recorded rooms, in order."""
        for event in events:
            try:
                if isinstance(event, VideoRoomJoined) and event.handle_id is not None:
                    self._joined.set(event.handle_id, event)
                    self._join_handles.set((str(event.room), str(event.publisher_id)), event.handle_id)
                elif isinstance(event, JsepEvent):
                    self._offered(event)
                    await self._answered(event)
                elif isinstance(event, VideoRoomPublished):
                    await self._published(event)
                elif isinstance(event, VideoRoomUnpublished | VideoRoomLeaving):
                    await self._left(str(event.room), str(event.publisher_id), type(event).__name__)
                elif isinstance(event, VideoRoomDestroyed):
                    await self._destroyed(str(event.room))
            except (*JANUS_FAILURES, RecordingRefusedError, ValidationError, OSError, TimeoutError) as exc:
                self.errors += 1
                log.error("cannot act on Janus event %s: %s", type(event).__name__, exc)

    def records(self, room: str) -> bool:
        return self.room_policy.get(room, self.settings.records(room))

    async def set_recording(self, room: str, on: bool) -> None:
        """Turn a room's recording on or off at once: on forwards everyone publishing now; off finishes
        the room's recording."""
        self.room_policy[room] = on
        if on:
            for event in list(self.publishers.get(room, {}).values()):
                try:
                    await self._published(event)
                except (*JANUS_FAILURES, RecordingRefusedError) as exc:
                    self.errors += 1
                    log.error("room %s: cannot record publisher %s: %s", room, event.publisher_id, exc)
        else:
            await self._finish_room(room)

    async def _published(self, event: VideoRoomPublished) -> None:
        room, publisher = str(event.room), str(event.publisher_id)
        self._publishers.set((room, publisher), event)
        if not self.records(room) or (room, publisher) in self.forwarders:
            return
        requests = self._stream_requests(event)
        if not requests:
            log.warning("room %s: publisher %s has no stream CallVault can record", room, publisher)
            return
        if not await self._in_room(room, publisher):
            self.unconfirmed += 1
            self._publishers.pop((room, publisher))
            log.warning("room %s: Janus does not know publisher %s; event ignored", room, publisher)
            return
        await self._forward(room, publisher, event.display, requests)

    def _offered(self, event: JsepEvent) -> None:
        """A publisher's offer: remember which of its streams simulcast until Janus answers it."""
        if event.owner == "remote" and event.jsep.type == "offer" and event.handle_id is not None:
            self._offered_simulcast.set(event.handle_id, frozenset(simulcast_mids(event.jsep.sdp)))

    async def _forward(
        self,
        room: str,
        publisher: str,
        display: str | None,
        requests: list[StreamRequest],
    ) -> None:
        """Record a publisher's streams and have Janus forward them to us."""
        closer = self._closers.pop(room, None)
        if closer is not None:
            closer.cancel()
        async with self._lock:
            if (room, publisher) in self.forwarders:
                return
            participant = ParticipantInfo(id=publisher, display_name=display)
            suite = self.settings.srtp_suite()
            if suite is not None:  # SRTP on the forward leg: a fresh key per forwarder, never stored
                requests = [dataclasses.replace(r, srtp=SrtpKey.generate(suite)) for r in requests]
            ports = await self.manager.add_participant(room, participant, requests)
            streams = [
                ForwardStream(
                    mid=p.mid,
                    port=p.port,
                    rtcp_port=p.rtcp_port if p.kind.value == "video" else None,
                    pt=r.payload_type,
                    # One forwarder through Janus's simulcast context: it targets the top substream,
                    # falls back to a lower one when that stops, switching at keyframes (the recorder
                    # asks for them when the track stalls). Without it Janus forwards layer 0 only.
                    simulcast=True if r.simulcast else None,
                    srtp=p.srtp,
                )
                for p, r in zip(ports, requests, strict=True)
            ]
            try:
                forwarders = await (await self._room()).rtp_forward(
                    _room_id(room),
                    _room_id(publisher),
                    self.settings.forward_host,
                    streams,
                    secret=self.settings.secret_for(room),
                    admin_key=self.settings.admin_key_value(),
                )
            except BaseException:
                await self.manager.remove_participant(room, publisher)
                raise
            self.forwarders[(room, publisher)] = [f.stream_id for f in forwarders]
            by_port = {f.port: f for f in forwarders}
            self.manager.name_forwarders(
                room,
                {
                    p.track: {
                        "janus_stream_id": by_port[p.port].stream_id,
                        "publisher": publisher,
                        "mid": p.mid,
                    }
                    for p in ports
                    if p.port in by_port
                },
            )
            log.info(
                "room %s: forwarding publisher %s (%s) to %d ports%s",
                room,
                publisher,
                display,
                len(ports),
                f" as SRTP ({suite.value})" if suite is not None else "",
            )

    async def _answered(self, event: JsepEvent) -> None:
        """Janus answered a publisher's offer: its streams exist now, before any media flows. Forwarding
        them at once (instead of at `published`, when media already runs) records from the first frame."""
        if event.owner != "local" or event.jsep.type != "answer" or event.handle_id is None:
            return
        joined = self._joined.pop(event.handle_id)
        if joined is None:
            return
        self._join_handles.pop((str(joined.room), str(joined.publisher_id)))
        offered = self._offered_simulcast.pop(event.handle_id) or frozenset()
        streams = publisher_streams(event.jsep.sdp, offered=offered)
        if streams:
            published = VideoRoomPublished.model_validate(
                {
                    "type": 64,
                    "event": {
                        "plugin": "janus.plugin.videoroom",
                        "data": {
                            "event": "published",
                            "room": joined.room,
                            "id": joined.publisher_id,
                            "display": joined.display,
                            "streams": streams,
                        },
                    },
                }
            )
            await self._published(published)

    def _stream_requests(self, event: VideoRoomPublished) -> list[StreamRequest]:
        requests = []
        for stream in event.streams:
            codec = CODECS.get((stream.codec or "").lower())
            if codec is None or stream.type not in ("audio", "video"):
                continue
            simulcast = bool(getattr(stream, "simulcast", False))
            requests.append(StreamRequest(stream.mid, codec, self._pt(codec), simulcast=simulcast))
        return requests

    def _pt(self, codec: Codec) -> int:
        if codec is Codec.OPUS:
            return self.settings.audio_pt
        return {Codec.VP8: 0, Codec.VP9: 2, Codec.H264: 6}[codec] + self.settings.video_pt

    async def _left(self, room: str, publisher: str, what: str) -> None:
        """`unpublished` / `leaving`: forget the publisher; finish its tracks once Janus confirms it is
        no longer publishing (a forged event changes nothing)."""
        handle = self._join_handles.pop((room, publisher))
        if handle is not None:
            self._joined.pop(handle)
        if (room, publisher) not in self.forwarders:
            self._publishers.pop((room, publisher))
            return
        for delay in CONFIRM_DELAYS:
            await asyncio.sleep(delay)
            if not await self._publishing(room, publisher):
                await self._gone(room, publisher)
                return
        self.unconfirmed += 1
        log.warning("room %s: %s of publisher %s not confirmed by Janus; ignored", room, what, publisher)

    async def _destroyed(self, room: str) -> None:
        """`destroyed`: finish the room's recording once Janus confirms the room is gone."""
        if room not in self.manager.rooms:
            self._forget_room(room)
            return
        for delay in CONFIRM_DELAYS:
            await asyncio.sleep(delay)
            if not await (await self._room()).exists(_room_id(room)):
                self._forget_room(room)
                await self._finish_room(room)
                return
        self.unconfirmed += 1
        log.warning("room %s: 'destroyed' not confirmed by Janus (the room exists); ignored", room)

    def _forget_room(self, room: str) -> None:
        for key in [k for k in self._publishers if k[0] == room]:
            self._publishers.pop(key)

    async def _listed(self, room: str, publisher: str) -> Participant | None:
        """The participant as Janus lists it in the room; None when it is not there (or the room is gone)."""
        try:
            participants = await (await self._room()).list_participants(_room_id(room))
        except NoSuchRoomError:
            return None
        return next((p for p in participants if str(p.id) == publisher), None)

    async def _in_room(self, room: str, publisher: str) -> bool:
        """Janus lists the participant in the room (publishing or about to: its SDP was answered)."""
        return await self._listed(room, publisher) is not None

    async def _publishing(self, room: str, publisher: str) -> bool:
        """Janus lists the participant in the room as a publisher."""
        listed = await self._listed(room, publisher)
        return listed is not None and listed.publisher

    async def _gone(self, room: str, publisher: str, grace: float | None = None) -> None:
        """The publisher's tracks end; an empty room's recording ends `grace` seconds later unless
        somebody publishes again (a longer grace after Janus restarts: publishers need time to return)."""
        self._publishers.pop((room, publisher))
        async with self._lock:
            self.forwarders.pop((room, publisher), None)
            await self.manager.remove_participant(room, publisher)
        if self.manager.room_is_empty(room) and room not in self._closers:
            wait = self.empty_room_grace if grace is None else grace
            self._closers[room] = asyncio.create_task(self._close_when_empty(room, wait))

    async def _close_when_empty(self, room: str, grace: float) -> None:
        await asyncio.sleep(grace)
        self._closers.pop(room, None)
        if self.manager.room_is_empty(room):
            await self._finish_room(room)

    async def _finish_room(self, room: str) -> None:
        closer = self._closers.pop(room, None)
        if closer is not None and closer is not asyncio.current_task():
            closer.cancel()
        async with self._lock:
            for key in [k for k in self.forwarders if k[0] == room]:
                for stream_id in self.forwarders.pop(key):
                    # Still-publishing participants keep their forwarders unless told; a publisher
                    # that left took its forwarders with it (428, ignored).
                    with contextlib.suppress(*JANUS_FAILURES):
                        await (await self._room()).stop_rtp_forward(
                            _room_id(room),
                            _room_id(key[1]),
                            stream_id,
                            secret=self.settings.secret_for(room),
                            admin_key=self.settings.admin_key_value(),
                        )
        await self.manager.finish_room(room)

    # -- reconciliation --------------------------------------------------------------------------------

    def _on_state(self, state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTED:
            log.info("connected to Janus at %s (generation %d)", self.settings.ws_url, self.client.generation)
            if self._reconciler is None or self._reconciler.done():
                self._reconciler = asyncio.create_task(self.reconcile())
        elif state is ConnectionState.DISCONNECTED:
            # The transport already warned why (cannot connect / connection lost): say it once.
            log.debug("no connection to Janus at %s; retrying", self.settings.ws_url)

    async def reconcile(self) -> None:
        """Match Janus's forwarders with ours (after start-up and every reconnection)."""
        await self._resume_rooms()
        for room in list(self.manager.rooms):
            try:
                listed = await (await self._room()).list_forwarders(
                    _room_id(room), self.settings.secret_for(room)
                )
            except JANUS_FAILURES as exc:
                log.warning("room %s: cannot list forwarders: %s", room, exc)
                listed = []
            alive: set[str] = set()
            async with self._lock:
                ours = {sid for (r, _), ids in self.forwarders.items() if r == room for sid in ids}
                for publisher in listed:
                    for fwd in publisher.forwarders:
                        if fwd.stream_id in ours:
                            alive.add(str(publisher.publisher_id))
                        elif self._ours(fwd.host, fwd.port):
                            log.info(
                                "room %s: stopping stale forwarder %d to port %d",
                                room,
                                fwd.stream_id,
                                fwd.port,
                            )
                            with contextlib.suppress(*JANUS_FAILURES):
                                await (await self._room()).stop_rtp_forward(
                                    _room_id(room),
                                    publisher.publisher_id,
                                    fwd.stream_id,
                                    secret=self.settings.secret_for(room),
                                    admin_key=self.settings.admin_key_value(),
                                )
            lost = [p for (r, p) in self.forwarders if r == room and p not in alive]
            for gone in lost:
                log.warning("room %s: Janus lost publisher %s's forwarders; finishing its tracks", room, gone)
                await self._gone(room, gone, grace=self.restart_grace)

    async def _resume_rooms(self) -> None:
        """After a restart of this service: publishers that were being recorded and are still forwarded
        into our port range get fresh forwarders to new ports, in the same recording."""
        for room, state in list(self.manager.resumable.items()):
            try:
                listed = await (await self._room()).list_forwarders(
                    _room_id(room), self.settings.secret_for(room)
                )
            except JANUS_FAILURES as exc:
                log.warning("room %s: cannot list forwarders to resume it: %s", room, exc)
                continue
            for publisher in listed:
                pid = str(publisher.publisher_id)
                previous = state.participants.get(pid)
                if previous is None:
                    continue
                for fwd in publisher.forwarders:
                    if self._ours(fwd.host, fwd.port):
                        with contextlib.suppress(*JANUS_FAILURES):
                            await (await self._room()).stop_rtp_forward(
                                _room_id(room),
                                publisher.publisher_id,
                                fwd.stream_id,
                                secret=self.settings.secret_for(room),
                                admin_key=self.settings.admin_key_value(),
                            )
                requests = [
                    StreamRequest(s.mid, s.codec, s.payload_type, simulcast=s.simulcast)
                    for s in previous.streams
                ]
                await self._forward(room, pid, previous.display_name, requests)
            if room in self.manager.resumable:  # nobody of that call is left: the recording ends here
                await self.manager.finish_abandoned(room)

    def _ours(self, host: str, port: int) -> bool:
        """A forwarder into our port range at an address this service (now or before a restart) had."""
        s = self.manager.settings
        return host in self.manager.forward_hosts and s.rtp_port_min <= port <= s.rtp_port_max

    async def _room(self) -> VideoRoom:
        return await self.client.videoroom()


def publisher_streams(
    answer: str, offer: str | None = None, offered: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """(type, mid, codec) of each active audio/video m-line of Janus's answer to a publisher, with
    ``simulcast: True`` on the video streams Janus simulcasts: VP8 or H.264 with rids (in the answer too)
    or an SSRC group SIM (in the publisher's ``offer`` only; or the mids ``offered`` already read from it)."""
    simulcast = simulcast_mids(answer) | set(offered) | (simulcast_mids(offer) if offer else set())
    streams: list[dict[str, Any]] = []
    for fields, attributes in _media_sections(answer):
        if len(fields) < 4 or fields[1] == "0" or fields[0] not in ("audio", "video"):
            continue
        mid = next((a[4:] for a in attributes if a.startswith("mid:")), None)
        rtpmap = next((a.split(" ", 1)[1] for a in attributes if a.startswith(f"rtpmap:{fields[3]} ")), "")
        if mid is not None and SAFE_MID.fullmatch(mid) is None:
            log.warning("publisher stream with an unsafe mid %.40r ignored", mid)
        elif mid is not None and rtpmap:
            stream: dict[str, Any] = {"type": fields[0], "mid": mid, "codec": rtpmap.split("/")[0].lower()}
            if fields[0] == "video" and mid in simulcast and stream["codec"] in SIMULCAST_CODECS:
                stream["simulcast"] = True
            streams.append(stream)
    return streams


def simulcast_mids(sdp: str) -> set[str]:
    """Mids of the video m-lines an SDP describes as simulcast, as Janus's core reads it: rids
    (``a=rid:ID send`` in an offer, ``recv`` in Janus's answer) or ``a=ssrc-group:SIM`` with two or more
    SSRCs."""
    mids: set[str] = set()
    for fields, attributes in _media_sections(sdp):
        if not fields or fields[0] != "video":
            continue
        mid = next((a[4:] for a in attributes if a.startswith("mid:")), None)
        rids = any(a.startswith("rid:") for a in attributes)
        group = any(a.startswith("ssrc-group:SIM ") and len(a.split()) >= 3 for a in attributes)
        if mid is not None and (rids or group):
            mids.add(mid)
    return mids


def _media_sections(sdp: str) -> list[tuple[list[str], list[str]]]:
    """(m-line fields, attribute values without "a=") of each media section of an SDP."""
    sections = []
    for section in sdp.replace("\r\n", "\n").split("\nm=")[1:]:
        lines = section.split("\n")
        sections.append((lines[0].split(), [line[2:] for line in lines[1:] if line.startswith("a=")]))
    return sections


def _room_id(room: str) -> int | str:
    return int(room) if room.isdigit() else room
