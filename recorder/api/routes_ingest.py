"""The ingest API: an SFU integration (the mediasoup package) registers the streams to record.

mediasoup has no event API: the application's own Node server knows its Routers and Producers. For each
Producer the package registers a stream here (`POST .../streams`) with its Consumer's `rtpParameters`
(in place of an SDP); CallVault answers with the UDP ports to send RTP to and to exchange RTCP with (its
PLIs go back to the Consumer from the RTCP port). The recordings are the RecordingManager's, the same as
Janus rooms': policy, pauses, manifests, archive, composites and webhooks.

Each room the package records holds a lease it renews with heartbeats (`PUT .../lease`): if the Node
side dies, its rooms' recordings are finished once the lease runs out. A heartbeat lists the streams the
package is sending; the answer names those CallVault does not record (it restarted meanwhile, or an
operator stopped the room) so the package registers them again: they continue as new parts of the same
recording. A recording left open by an earlier run that nobody registers again within
`ingest.restart_grace` is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import Tags
from recorder.api.problems import ApiError
from recorder.api.registry import TAGS, Call, Registry
from recorder.errors import RecordingRefusedError, SdpError
from recorder.models import MediaKind, PauseInterval
from recorder.names import SAFE_MID
from recorder.recording import ParticipantInfo
from recorder.rtp_parameters import ConsumerStream, describe, parse_rtp_parameters
from recorder.service.manager import RecordingManager, StreamRequest
from recorder.service.settings import IngestSettings

log = logging.getLogger(__name__)

ROLES = {Role.INGEST, Role.OPERATOR}
PRODUCER_PAUSED = "producer paused"
TAG = "ingest"
TAGS.setdefault(TAG, "SFU integrations (the mediasoup package): register streams to record, hold leases.")

Mid = Annotated[str, StringConstraints(pattern=f"^{SAFE_MID.pattern}$")]
DisplayName = Annotated[str, StringConstraints(max_length=256)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestStreamRegistration(_Body):
    """One Producer to record: its Consumer's rtpParameters, who it belongs to, whether it is paused."""

    kind: Literal["audio", "video"]
    mid: Mid = Field(
        description="The stream's name inside the participant (the Producer's mid, or a counter)."
    )
    rtp_parameters: dict[str, Any] = Field(
        max_length=8,
        description="The Consumer's rtpParameters, as mediasoup gives them (codecs, encodings,"
        " headerExtensions, rtcp, mid): checked in full, bounded (16 codecs, 8 encodings, 16 extensions).",
    )
    display_name: DisplayName | None = None
    paused: bool = Field(
        default=False, description="The Producer is paused now: nothing recorded until resumed."
    )
    metadata: Tags = Field(default_factory=dict, description="Tags of the room's recording (added to it).")


class IngestStreamOut(_Body):
    recording_id: str
    room_id: str
    participant_id: str
    mid: str
    track: str = Field(description="The track's name in the recording.")
    codec: str
    payload_type: int
    ssrc: int
    port: int = Field(description="UDP port CallVault receives the stream's RTP on.")
    rtcp_port: int = Field(description="UDP port of its RTCP (sender reports in, PLIs out).")
    lease_seconds: float = Field(description="Renew the room's lease (PUT .../lease) well within this.")


class IngestLeaseStream(_Body):
    participant_id: Annotated[str, StringConstraints(max_length=128)]
    mid: Annotated[str, StringConstraints(max_length=32)]


class IngestLeaseRenewal(_Body):
    streams: list[IngestLeaseStream] = Field(default_factory=list, max_length=4096)


class IngestLeaseOut(_Body):
    room_id: str
    recording_id: str | None = None
    lease_seconds: float
    missing: list[IngestLeaseStream] = Field(
        default_factory=list,
        description="Streams the package sends that CallVault does not record: register them again.",
    )


class IngestPauseOut(_Body):
    room_id: str
    participant_id: str
    mid: str
    paused: bool


class IngestFinishedOut(_Body):
    room_id: str
    recording_id: str | None = None
    tracks: list[str] = Field(default_factory=list)


examples.BODIES.update(
    {
        IngestStreamRegistration: IngestStreamRegistration(
            kind="video",
            mid="0",
            rtp_parameters=(
                {
                    "mid": "0",
                    "codecs": [
                        {"mimeType": "video/VP8", "payloadType": 101, "clockRate": 90000},
                        {
                            "mimeType": "video/rtx",
                            "payloadType": 102,
                            "clockRate": 90000,
                            "parameters": {"apt": 101},
                        },
                    ],
                    "encodings": [{"ssrc": 622318427, "rtx": {"ssrc": 190446382}}],
                    "headerExtensions": [
                        {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 4}
                    ],
                    "rtcp": {"cname": "d7Yk3pH2", "reducedSize": True},
                }
            ),
            display_name="Agent Smith",
            metadata={"queue": "claims"},
        ),
        IngestStreamOut: IngestStreamOut(
            recording_id=examples.RID,
            room_id=examples.ROOM,
            participant_id="1002",
            mid="0",
            track="1002-video-0",
            codec="VP8",
            payload_type=101,
            ssrc=622318427,
            port=40010,
            rtcp_port=40011,
            lease_seconds=15.0,
        ),
        IngestLeaseRenewal: IngestLeaseRenewal(streams=[IngestLeaseStream(participant_id="1002", mid="0")]),
        IngestLeaseOut: IngestLeaseOut(room_id=examples.ROOM, recording_id=examples.RID, lease_seconds=15.0),
        IngestPauseOut: IngestPauseOut(room_id=examples.ROOM, participant_id="1002", mid="0", paused=True),
        IngestFinishedOut: IngestFinishedOut(
            room_id=examples.ROOM, recording_id=examples.RID, tracks=["1002-video-0"]
        ),
    }
)


@dataclass
class RoomLease:
    expires: float
    closer: asyncio.Task[None] | None = None


@dataclass
class Ingest:
    """The rooms recorded through the ingest API, their leases, and the task that ends expired ones."""

    manager: RecordingManager
    settings: IngestSettings
    rooms: dict[str, RoomLease] = field(default_factory=dict)
    pauses: dict[tuple[str, str], PauseInterval] = field(default_factory=dict)
    """(room, track) -> the open pause of a paused Producer."""
    _watcher: asyncio.Task[None] | None = None

    def producer_paused(self, room: str, pid: str, mid: str, track: str, by: str | None) -> None:
        """A Producer paused: its track records nothing meanwhile (a pause interval in its summary) and the
        sinks hear of it as a participant's pause (the `recording.paused` webhook, reason `participant
        <id>: stream <mid>: producer paused`)."""
        recording = self.manager.rooms[room]
        recording.session.pause([track], by, PRODUCER_PAUSED)
        if (room, track) in self.pauses:
            return
        interval = PauseInterval(start_time=time.time(), by=by, reason=f"stream {mid}: {PRODUCER_PAUSED}")
        self.pauses[(room, track)] = interval
        self._tell("recording_paused", room, pid, interval)

    def producer_resumed(self, room: str, pid: str, track: str) -> None:
        """A Producer resumed: its track records again (from a keyframe, asked for now) unless the whole
        recording is paused by an operator; the sinks hear the pause ended (`recording.resumed`)."""
        recording = self.manager.rooms[room]
        if recording.paused is None:
            recording.session.resume([track])
        interval = self.pauses.pop((room, track), None)
        if interval is not None:
            interval.end_time = time.time()
            self._tell("recording_resumed", room, pid, interval)

    def _tell(self, method: str, room: str, pid: str, interval: PauseInterval) -> None:
        info = self.manager.rooms[room].info
        for sink in self.manager.sinks:
            try:
                getattr(sink, method)(info, pid, interval)
            except Exception:  # one failing sink never undoes the pause nor stops the others
                log.exception("sink %s failed in %s", type(sink).__name__, method)

    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch(), name="ingest leases")

    async def close(self) -> None:
        tasks = [t for t in [self._watcher, *(r.closer for r in self.rooms.values())] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def renew(self, room: str) -> RoomLease:
        lease = self.rooms.get(room)
        expires = time.monotonic() + self.settings.lease_seconds
        if lease is None:
            lease = self.rooms[room] = RoomLease(expires)
        lease.expires = expires
        if lease.closer is not None:
            lease.closer.cancel()
            lease.closer = None
        return lease

    def stream_left(self, room: str) -> None:
        """A stream was finished: an empty room ends after `empty_room_grace` unless one comes back."""
        lease = self.rooms.get(room)
        if lease is None or not self.manager.room_is_empty(room) or lease.closer is not None:
            return
        lease.closer = asyncio.get_running_loop().create_task(self._close_when_empty(room))

    async def finish(self, room: str, why: str) -> None:
        lease = self.rooms.pop(room, None)
        if lease is not None and lease.closer is not None and lease.closer is not asyncio.current_task():
            lease.closer.cancel()
        for key in [k for k in self.pauses if k[0] == room]:
            del self.pauses[key]
        if room in self.manager.rooms:
            log.info("room %s: finishing its ingest recording: %s", room, why)
            await self.manager.finish_room(room)

    async def _close_when_empty(self, room: str) -> None:
        await asyncio.sleep(self.settings.empty_room_grace)
        lease = self.rooms.get(room)
        if lease is not None:
            lease.closer = None
        if self.manager.room_is_empty(room):
            await self.finish(room, "no stream left")

    async def _watch(self) -> None:
        started = time.monotonic()
        janus = self.manager.settings.janus.enabled  # then only rooms the ingest API recorded are ours
        abandoned = {room for room, state in self.manager.resumable.items() if state.ingest or not janus}
        tick = max(0.05, min(1.0, self.settings.lease_seconds / 10))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for room, lease in list(self.rooms.items()):
                if now > lease.expires:
                    log.warning(
                        "room %s: no heartbeat from its SFU side for %g s",
                        room,
                        self.settings.lease_seconds,
                    )
                    try:
                        await self.finish(room, "its lease ran out")
                    except Exception:
                        log.exception("room %s: cannot finish its recording", room)
            if abandoned and now - started >= self.settings.restart_grace:
                for room in abandoned & set(self.manager.resumable):
                    try:
                        await self.manager.finish_abandoned(room)
                    except Exception:
                        log.exception("room %s: cannot finish the recording left open", room)
                abandoned = set()


def register(reg: Registry, ctx: ApiContext, settings: IngestSettings | None = None) -> Ingest:
    manager = ctx.manager
    ingest = Ingest(manager, settings or manager.settings.ingest)
    ingest.start()
    base = "/v1/ingest/rooms/{room_id}"

    def refuse_unrecorded(room: str) -> None:
        policy = ctx.policy.room(room)
        if policy.record is False:
            raise ApiError(
                409, f"room {room} is not recorded (its policy says record: false)", "not-recorded"
            )

    @reg.add(
        "POST",
        base + "/participants/{participant_id}/streams",
        ROLES,
        "Record a Producer: its Consumer's rtpParameters in, the UDP ports to send it to out",
        TAG,
        "ingest.stream",
        body=IngestStreamRegistration,
        response=IngestStreamOut,
        status=201,
        errors=(409,),
    )
    async def register_stream(call: Call) -> IngestStreamOut:
        room, pid = call.path["room_id"], call.path["participant_id"]
        body = call.body(IngestStreamRegistration)
        call.detail = {"mid": body.mid, "kind": body.kind}
        refuse_unrecorded(room)
        try:
            params = parse_rtp_parameters(body.rtp_parameters)
            stream: ConsumerStream = describe(params, MediaKind(body.kind))
        except SdpError as exc:
            raise ApiError(422, f"body.rtp_parameters: {exc}", "invalid-rtp-parameters") from None
        request = StreamRequest(
            body.mid, stream.codec, stream.payload_type, channels=stream.channels, ssrc=stream.ssrc,
            rtx_payload_type=stream.rtx_payload_type, rtx_ssrc=stream.rtx_ssrc,
        )  # fmt: skip
        participant = ParticipantInfo(id=pid, display_name=body.display_name)
        ingest.renew(room)
        try:
            ports = (await manager.add_streams(room, participant, [request]))[0]
        except RecordingRefusedError as exc:
            raise ApiError(409, str(exc), "refused") from None
        except OSError as exc:
            raise ApiError(503, f"no UDP port for the stream: {exc}", "no-port") from None
        recording = manager.rooms[room]
        if body.metadata:
            recording.info.metadata.update(body.metadata)
        if body.paused:
            ingest.producer_paused(room, pid, ports.mid, ports.track, call.principal.name)
        call.target = f"{room}/{pid}/{body.mid}"
        return IngestStreamOut(
            recording_id=recording.info.recording_id,
            room_id=room,
            participant_id=pid,
            mid=ports.mid,
            track=ports.track,
            codec=stream.codec.value,
            payload_type=stream.payload_type,
            ssrc=stream.ssrc,
            port=ports.port,
            rtcp_port=ports.rtcp_port,
            lease_seconds=ingest.settings.lease_seconds,
        )

    def find(room: str, pid: str, mid: str) -> str:
        for ports in manager.participant_streams(room, pid):
            if ports.mid == mid:
                return ports.track
        raise ApiError(404, f"room {room}: no recorded stream {mid} of participant {pid}", "not-recording")

    @reg.add(
        "DELETE",
        base + "/participants/{participant_id}/streams/{mid}",
        ROLES,
        "A Producer closed: finish its track (the participant leaves with its last one)",
        TAG,
        "ingest.stream_end",
        response=IngestFinishedOut,
    )
    async def end_stream(call: Call) -> IngestFinishedOut:
        room, pid, mid = call.path["room_id"], call.path["participant_id"], call.path["mid"]
        recording = manager.rooms.get(room)
        summaries = await manager.remove_streams(room, pid, [mid])
        for summary in summaries:  # a Producer closed while paused: its pause ends with its track
            ingest.pauses.pop((room, summary.name), None)
        ingest.stream_left(room)
        return IngestFinishedOut(
            room_id=room,
            recording_id=recording.info.recording_id if recording else None,
            tracks=[s.name for s in summaries],
        )

    def pause_route(pause: bool) -> None:
        verb = "pause" if pause else "resume"

        async def handler(call: Call) -> IngestPauseOut:
            room, pid, mid = call.path["room_id"], call.path["participant_id"], call.path["mid"]
            track = find(room, pid, mid)
            if pause:
                ingest.producer_paused(room, pid, mid, track, call.principal.name)
            else:
                ingest.producer_resumed(room, pid, track)
            return IngestPauseOut(room_id=room, participant_id=pid, mid=mid, paused=pause)

        handler.__name__ = f"{verb}_stream"
        reg.add(
            "POST",
            base + f"/participants/{{participant_id}}/streams/{{mid}}/{verb}",
            ROLES,
            f"The Producer was {verb}d: {verb} its track"
            + (" (its packets are dropped at ingest)" if pause else " (from a keyframe, asked for now)"),
            TAG,
            f"ingest.{verb}",
            response=IngestPauseOut,
            errors=(404,),
        )(handler)

    pause_route(True)
    pause_route(False)

    @reg.add(
        "PUT",
        base + "/lease",
        ROLES,
        "Heartbeat: renew the room's lease; the answer names the streams to register again",
        TAG,
        None,
        body=IngestLeaseRenewal,
        response=IngestLeaseOut,
    )
    async def renew_lease(call: Call) -> IngestLeaseOut:
        room = call.path["room_id"]
        streams = call.body(IngestLeaseRenewal).streams
        recording = manager.rooms.get(room)
        if recording is not None or streams:
            ingest.renew(room)
        recorded = {
            (pid, p.mid)
            for pid, ports in (recording.participants if recording else {}).items()
            for p in ports
        }
        missing = [s for s in streams if (s.participant_id, s.mid) not in recorded]
        return IngestLeaseOut(
            room_id=room,
            recording_id=recording.info.recording_id if recording else None,
            lease_seconds=ingest.settings.lease_seconds,
            missing=missing,
        )

    @reg.add(
        "DELETE",
        base,
        ROLES,
        "The Router closed: finish the room's recording now",
        TAG,
        "ingest.room_end",
        response=IngestFinishedOut,
    )
    async def end_room(call: Call) -> IngestFinishedOut:
        room = call.path["room_id"]
        recording = manager.rooms.get(room)
        rid = recording.info.recording_id if recording else None
        tracks = list(recording.session.tracks) if recording else []
        await ingest.finish(room, "its router closed")
        return IngestFinishedOut(room_id=room, recording_id=rid, tracks=tracks)

    return ingest
