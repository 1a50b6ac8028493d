"""Recordings of rooms: one RecordingSession per recorded room, a track per forwarded participant stream.

SFU-agnostic: the Janus bridge (and later mediasoup) calls `add_participant` with the streams to record
and forwards them to the ports it gets back; `remove_participant` and `finish_room` end them. Every
recording's life is handed to the RecordingSinks (storage, manifests, webhooks).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from recorder.capture.policy import capture_wanted
from recorder.crypto.srtp import SrtpKey
from recorder.errors import RecordingRefusedError
from recorder.models import Codec, MediaKind, PauseInterval, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.names import SafeId, SafeMid, UnsafeNameError, check_id, check_mid, child
from recorder.recording import ParticipantInfo, RecordingInfo, RecordingSink
from recorder.service.ports import PortAllocator
from recorder.service.settings import ServiceSettings
from recorder.session import RecordingSession
from recorder.summaries import read_summary

log = logging.getLogger(__name__)

CLOCK_RATES = {Codec.VP8: 90000, Codec.VP9: 90000, Codec.H264: 90000, Codec.OPUS: 48000}


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """One stream of a participant to record."""

    mid: str
    codec: Codec
    payload_type: int
    channels: int = 2
    simulcast: bool = False
    """The SFU forwards it through its simulcast context (the highest layer being sent)."""
    ssrc: int | None = None
    """The SSRC the SFU sends it with, when known in advance (a mediasoup Consumer's)."""
    srtp: SrtpKey | None = None
    """The SFU sends it as SRTP under this key (fresh per forwarder, never stored)."""
    rtx_payload_type: int | None = None
    rtx_ssrc: int | None = None
    """The SFU retransmits on RTX (a mediasoup Consumer): lost packets are NACKed and repaired."""


@dataclass(frozen=True, slots=True)
class StreamPorts:
    mid: str
    kind: MediaKind
    port: int
    rtcp_port: int
    track: str
    srtp: SrtpKey | None = None
    """The key the track decrypts with: the one to give the SFU's forwarder."""


class ForwardedStream(BaseModel):
    mid: SafeMid
    codec: Codec
    payload_type: int
    simulcast: bool = False


class ParticipantState(BaseModel):
    display_name: str | None = None
    streams: list[ForwardedStream] = Field(default_factory=list)


class RoomState(BaseModel):
    recording_id: SafeId
    ingest: bool = Field(
        default=False, description="Recorded through the ingest API (mediasoup), not followed in Janus."
    )
    participants: dict[SafeId, ParticipantState] = Field(default_factory=dict)


class ServiceState(BaseModel):
    """What survives a restart of the service (data_dir/state.json): which rooms were being recorded
    into which recording, and which publisher streams were forwarded, so a restarted service can take
    the same calls up again in the same recordings."""

    rooms: dict[SafeId, RoomState] = Field(default_factory=dict)
    forward_hosts: list[str] = Field(
        default_factory=list,
        description="Addresses earlier runs had Janus forward to (a pod may come back with a new IP).",
    )


@dataclass
class RoomRecording:
    info: RecordingInfo
    session: RecordingSession
    participants: dict[str, list[StreamPorts]] = field(default_factory=dict)
    finishing: bool = False
    state: RoomState | None = None
    paused: tuple[str | None, str | None] | None = None  # (by, reason) while the whole room is paused
    open_pauses: dict[str | None, PauseInterval] = field(default_factory=dict)  # participant (None: all)


def new_recording_id(room: str, node: str | None = None) -> str:
    """time-room-random; in a fleet (`node`: this recorder's unique name, at most 63 characters)
    time-room_node-random, unique across the fleet: the room cut to 38 characters keeps it within the id
    allow-list's 128 (16+1+38+1+63+1+8)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in room)[: 40 if node is None else 38]
    at = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    middle = safe if node is None else f"{safe}_{node}"  # node names have no '_': recorder/fleet/recovery.py
    return f"{at}-{middle}-{secrets.token_hex(4)}"


class RecordingManager:
    def __init__(self, settings: ServiceSettings, sinks: list[RecordingSink] | None = None) -> None:
        self.settings = settings
        self.sinks = list(sinks or [])
        self.rooms: dict[str, RoomRecording] = {}
        self.finished: list[RecordingInfo] = []
        self.ports = PortAllocator(settings.rtp_port_min, settings.rtp_port_max, settings.rtp_bind)
        self.workers = MuxWorkers(settings.recorder.mux_threads)
        self.recordings_dir = settings.data_dir / "recordings"
        self.state_path = settings.data_dir / "state.json"
        state = self._load_state()
        self.resumable = state.rooms
        hosts = [h for h in state.forward_hosts if h != settings.janus.forward_host][-4:]
        self.forward_hosts = [*hosts, settings.janus.forward_host]
        """This run's forward address and earlier runs': forwarders to them into our range are ours."""
        """Rooms that were being recorded when the service last stopped without finishing them."""
        self.node_name: str | None = None
        """This recorder's name in a fleet (recorder/fleet): new recording ids carry it."""
        self.admission: list[Callable[[], str | None]] = []
        """Checks a new recording must pass: each returns None, or why recording must not start now."""
        self._lock = asyncio.Lock()
        self._streams_lock = asyncio.Lock()  # add_streams, one at a time

    @property
    def active_streams(self) -> int:
        return sum(len(r.session.tracks) for r in self.rooms.values())

    def participant_streams(self, room: str, participant: str) -> list[StreamPorts]:
        recording = self.rooms.get(room)
        return list(recording.participants.get(participant, [])) if recording else []

    async def add_participant(
        self, room: str, participant: ParticipantInfo, streams: list[StreamRequest]
    ) -> list[StreamPorts]:
        """Start recording a participant's streams; returns the ports to forward each stream to.
        Idempotent: a participant already being recorded gets its existing ports back. Ids and mids
        become file names: unsafe ones are refused (`RecordingRefusedError`) before anything is made."""
        try:
            check_id(room, "room id")
            check_id(participant.id, "participant id")
            for stream in streams:
                check_mid(stream.mid)
        except UnsafeNameError as exc:
            raise RecordingRefusedError(f"room {room!r:.60}: {exc}") from None
        async with self._lock:
            recording = self.rooms.get(room) or await self._start_room(room)
            if participant.id in recording.participants:
                return recording.participants[participant.id]
            assert recording.state is not None
            recording.state.participants[participant.id] = ParticipantState(
                display_name=participant.display_name,
                streams=[
                    ForwardedStream(
                        mid=r.mid, codec=r.codec, payload_type=r.payload_type, simulcast=r.simulcast
                    )
                    for r in streams
                ],
            )
            participant.joined_at = participant.joined_at or time.time()
            recording.info.participants.append(participant)
            allocated: list[StreamPorts] = []
            try:
                for stream in streams:
                    allocated.append(await self._add_stream(recording, participant.id, stream))
            except BaseException:
                for ports in allocated:
                    await recording.session.finish_track(ports.track)
                    self.ports.release(ports.port)
                raise
            recording.participants[participant.id] = allocated
            if recording.paused is not None:  # joining a paused call: nothing of it is recorded either
                recording.session.pause([p.track for p in allocated], *recording.paused)
            await self._save_state()
            log.info(
                "room %s: recording participant %s (%s): %s",
                room,
                participant.id,
                participant.display_name,
                ", ".join(f"{p.track}@{p.port}" for p in allocated),
            )
            return allocated

    async def add_streams(
        self, room: str, participant: ParticipantInfo, streams: list[StreamRequest]
    ) -> list[StreamPorts]:
        """Record more streams of a participant, one SFU producer at a time (mediasoup); the participant
        is added when new. Idempotent per mid: a stream already recorded gets its ports back. Calls are
        serialized: two producers of a new participant registering at once must not both add it."""
        async with self._streams_lock:
            ports = await self._add_streams(room, participant, streams)
            state = self.rooms[room].state if room in self.rooms else None
            if state is not None and not state.ingest:
                state.ingest = True  # after a restart, the ingest API (not the Janus bridge) takes it up
                async with self._lock:
                    await self._save_state()
            return ports

    async def _add_streams(
        self, room: str, participant: ParticipantInfo, streams: list[StreamRequest]
    ) -> list[StreamPorts]:
        if room not in self.rooms or participant.id not in self.rooms[room].participants:
            return await self.add_participant(room, participant, streams)
        try:
            for stream in streams:
                check_mid(stream.mid)
        except UnsafeNameError as exc:
            raise RecordingRefusedError(f"room {room!r:.60}: {exc}") from None
        async with self._lock:
            recording = self.rooms.get(room)
            if recording is None or participant.id not in recording.participants:
                raise RecordingRefusedError(f"room {room}: participant {participant.id} left meanwhile")
            current = recording.participants[participant.id]
            known = {p.mid: p for p in current}
            result: list[StreamPorts] = []
            for stream in streams:
                if stream.mid in known:
                    result.append(known[stream.mid])
                    continue
                ports = await self._add_stream(recording, participant.id, stream)
                current.append(ports)
                known[stream.mid] = ports
                result.append(ports)
                if recording.state is not None and participant.id in recording.state.participants:
                    recording.state.participants[participant.id].streams.append(
                        ForwardedStream(mid=stream.mid, codec=stream.codec, payload_type=stream.payload_type)
                    )
                if recording.paused is not None:
                    recording.session.pause([ports.track], *recording.paused)
            await self._save_state()
            return result

    async def remove_streams(self, room: str, participant_id: str, mids: list[str]) -> list[TrackSummary]:
        """Finish some streams of a participant (a mediasoup producer closed); the participant leaves
        when none is left."""
        async with self._lock:
            recording = self.rooms.get(room)
            current = recording.participants.get(participant_id) if recording else None
            if recording is None or current is None:
                return []
            if any(p.mid not in mids for p in current):
                summaries = []
                for ports in [p for p in current if p.mid in mids]:
                    current.remove(ports)
                    summaries.append(await recording.session.finish_track(ports.track))
                    self.ports.release(ports.port)
                if recording.state is not None and participant_id in recording.state.participants:
                    state = recording.state.participants[participant_id]
                    state.streams = [s for s in state.streams if s.mid not in mids]
                await self._save_state()
                return summaries
        return await self.remove_participant(room, participant_id)

    def name_forwarders(self, room: str, names: dict[str, dict[str, object]]) -> None:
        """The SFU's names of the forwarders of tracks (track -> fields, e.g. the Janus stream id), noted
        in the tracks' packet captures."""
        recording = self.rooms.get(room)
        if recording is not None:
            for track, fields in names.items():
                recording.session.name_forwarder(track, **fields)

    async def remove_participant(self, room: str, participant_id: str) -> list[TrackSummary]:
        """Finish a participant's tracks (idempotent: Janus sends 'unpublished' twice)."""
        async with self._lock:
            recording = self.rooms.get(room)
            if recording is None or participant_id not in recording.participants:
                return []
            summaries = []
            for ports in recording.participants.pop(participant_id):
                summaries.append(await recording.session.finish_track(ports.track))
                self.ports.release(ports.port)
            for p in recording.info.participants:
                if p.id == participant_id and p.left_at is None:
                    p.left_at = time.time()
            if recording.state is not None:
                recording.state.participants.pop(participant_id, None)
            await self._save_state()
            return summaries

    def pause(
        self, room: str, participant: str | None = None, by: str | None = None, reason: str | None = None
    ) -> bool:
        """Pause a room's recording, or one participant's tracks; False when there is nothing to pause."""
        recording = self.rooms.get(room)
        if recording is None or (participant is not None and participant not in recording.participants):
            return False
        if recording.paused is not None:
            return True  # already paused as a whole
        recording.session.pause(self._track_names(recording, participant), by, reason)
        interval = PauseInterval(start_time=time.time(), by=by, reason=reason)
        if participant is None:
            recording.paused = (by, reason)
            recording.info.pauses.append(interval)
        recording.open_pauses[participant] = interval
        self._tell_sinks("recording_paused", recording.info, participant, interval)
        return True

    def resume(self, room: str, participant: str | None = None) -> bool:
        recording = self.rooms.get(room)
        if recording is None or (participant is not None and participant not in recording.participants):
            return False
        recording.session.resume(self._track_names(recording, participant))
        if participant is None:
            recording.paused = None
        interval = recording.open_pauses.pop(participant, None)
        if interval is not None:
            interval.end_time = time.time()
            self._tell_sinks("recording_resumed", recording.info, participant, interval)
        return True

    def _tell_sinks(self, method: str, *args: object) -> None:
        """Call a sink hook on every sink; one failing sink never undoes what happened or stops the rest."""
        for sink in self.sinks:
            try:
                getattr(sink, method)(*args)
            except Exception:
                log.exception("sink %s failed in %s", type(sink).__name__, method)

    @staticmethod
    def _track_names(recording: RoomRecording, participant: str | None) -> list[str] | None:
        if participant is None:
            return None
        return [p.track for p in recording.participants[participant]]

    def room_is_empty(self, room: str) -> bool:
        recording = self.rooms.get(room)
        return recording is not None and not recording.participants

    async def finish_room(self, room: str) -> RecordingInfo | None:
        """Finish every track of the room's recording and hand it to the sinks."""
        async with self._lock:
            recording = self.rooms.pop(room, None)
            self.resumable.pop(room, None)
            await self._save_state()
        if recording is None:
            return None
        for participant_id in list(recording.participants):
            for ports in recording.participants.pop(participant_id):
                self.ports.release(ports.port)
        summaries = await recording.session.stop()
        info = recording.info
        info.finished_at = time.time()
        for interval in recording.open_pauses.values():
            interval.end_time = interval.end_time or info.finished_at
        for p in info.participants:
            p.left_at = p.left_at or info.finished_at
        log.info("room %s: recording %s finished with %d tracks", room, info.recording_id, len(summaries))
        for sink in self.sinks:
            try:
                await sink.recording_finished(info, summaries)
            except Exception:
                log.exception("recording %s: a sink failed to finish it", info.recording_id)
        self.finished.append(info)
        return info

    async def finish_abandoned(self, room: str) -> RecordingInfo | None:
        """A recording an earlier run left open, whose call did not come back: its tracks were finalized
        at start-up; hand it to the sinks as finished, so it gets its manifest and announcement."""
        state = self.resumable.pop(room, None)
        if state is None:
            return None
        folder = self.recordings_dir / state.recording_id
        summaries = await asyncio.to_thread(read_summaries, folder)
        starts = [t.first_wallclock for t in summaries if t.first_wallclock is not None]
        ends = [t.last_wallclock for t in summaries if t.last_wallclock is not None]
        info = RecordingInfo(
            recording_id=state.recording_id,
            folder=folder,
            room_id=room,
            started_at=min(starts, default=time.time()),
            finished_at=max(ends, default=time.time()),
            participants=[
                ParticipantInfo(id=pid, display_name=p.display_name) for pid, p in state.participants.items()
            ],
            track_participants={
                t.name: pid for t in summaries for pid in state.participants if t.name.startswith(f"{pid}-")
            },
        )
        log.info(
            "room %s: recording %s was left open by an earlier run; finishing it", room, info.recording_id
        )
        for sink in self.sinks:
            try:
                await sink.recording_finished(info, summaries)
            except Exception:
                log.exception("recording %s: a sink failed to finish it", info.recording_id)
        self.finished.append(info)
        await self._save_state()
        return info

    async def shutdown(self) -> None:
        """Finalize every open recording (SIGTERM)."""
        for room in list(self.rooms):
            await self.finish_room(room)
        await asyncio.to_thread(self.workers.shutdown)

    async def _start_room(self, room: str) -> RoomRecording:
        for check in self.admission:
            reason = check()
            if reason is not None:
                raise RecordingRefusedError(f"room {room}: not starting a recording: {reason}")
        previous = self.resumable.pop(room, None)
        recording_id = previous.recording_id if previous else new_recording_id(room, self.node_name)
        folder = self.recordings_dir / recording_id
        info = RecordingInfo(recording_id=recording_id, folder=folder, room_id=room, started_at=time.time())
        session = RecordingSession(
            folder, self.settings.recorder, self.workers, self.sinks, self.settings.janus.media_sources()
        )
        recording = RoomRecording(info, session, state=RoomState(recording_id=recording_id))
        if previous:
            log.info("room %s: resuming recording %s after a restart", room, recording_id)
        self.rooms[room] = recording
        self._tell_sinks("recording_started", info)
        session.capture = capture_wanted(info.metadata, self.settings.recorder.capture)  # policy hooks ran
        log.info("room %s: recording %s started in %s", room, recording_id, folder)
        return recording

    async def _add_stream(
        self, recording: RoomRecording, participant: str, stream: StreamRequest
    ) -> StreamPorts:
        kind = stream.codec.kind
        name = await asyncio.to_thread(
            unused_track_name, recording.info.folder, f"{participant}-{kind.value}-{stream.mid}"
        )
        child(recording.info.folder, f"{name}.json")  # raises unless the track's files stay inside
        for _ in range(8):  # a port can be taken between the check and the bind; try another
            port = self.ports.allocate()
            spec = StreamSpec(
                name=name,
                codec=stream.codec,
                payload_type=stream.payload_type,
                clock_rate=CLOCK_RATES[stream.codec],
                channels=stream.channels,
                port=port,
                rtcp_port=port + 1,
                address=self.settings.rtp_bind,
                ssrc=stream.ssrc,
                rtx_payload_type=stream.rtx_payload_type,
                rtx_ssrc=stream.rtx_ssrc,
            )
            try:
                await recording.session.add_track(spec, stream.srtp)
            except OSError as exc:
                self.ports.release(port)
                log.warning("port pair %d/%d is taken (%s); trying another", port, port + 1, exc)
                continue
            recording.info.track_participants[name] = participant
            return StreamPorts(stream.mid, kind, port, port + 1, name, stream.srtp)
        raise OSError(f"could not bind an RTP port pair for {name}")

    def _load_state(self) -> ServiceState:
        try:
            return ServiceState.model_validate_json(self.state_path.read_bytes())
        except FileNotFoundError:
            return ServiceState()
        except (OSError, ValidationError) as exc:
            log.error("ignoring unreadable state file %s: %s", self.state_path, exc)
            return ServiceState()

    async def _save_state(self) -> None:
        rooms = {room: r.state for room, r in self.rooms.items() if r.state is not None}
        state = ServiceState(rooms={**self.resumable, **rooms}, forward_hosts=self.forward_hosts)
        await asyncio.to_thread(_write_atomically, self.state_path, state.model_dump_json(indent=2))

    def folder_of(self, room: str) -> Path | None:
        recording = self.rooms.get(room)
        return recording.info.folder if recording else None


def unused_track_name(folder: Path, name: str) -> str:
    """`name`, or `name-partN` when an earlier run of the service already recorded a track by that name
    in this recording (the same publisher, taken up again after a restart)."""
    candidate, n = name, 1
    while (folder / f"{candidate}.json").exists() or (folder / f"{candidate}.segments").exists():
        n += 1
        candidate = f"{name}-part{n}"
    return candidate


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def read_summaries(folder: Path) -> list[TrackSummary]:
    """Every readable track summary in a recording folder."""
    summaries = []
    for path in sorted(folder.glob("*.json")):
        summary = read_summary(folder, path.stem)
        if summary is not None:
            summaries.append(summary)
    return summaries
