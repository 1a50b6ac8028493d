"""What the archive tests and the time-to-available benchmark share: a webhook receiver (aiohttp on
127.0.0.1), a TCP relay in front of the S3 server that can be cut and restored (the store "goes away"
while keeping its objects, as MinIO would), and a real call: ffmpeg streams reference media as RTP into a
RecordingSession whose listener is the archive."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from media import rtp_sender

from recorder.archive import Archive, ArchiveSettings
from recorder.commands.demo import free_port_pair
from recorder.config import RecorderSettings
from recorder.models import Codec, MediaKind, SegmentInfo, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.recording import ParticipantInfo, RecordingInfo
from recorder.session import RecordingSession
from recorder.summaries import write_summary
from recorder.webhooks import WebhookEvent, verify

CODECS = {"vp8": (Codec.VP8, 90000, 96), "opus": (Codec.OPUS, 48000, 111)}


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: bytes
    event: WebhookEvent


class Receiver:
    """A webhook endpoint that accepts everything and keeps every request with its arrival time."""

    def __init__(self, port: int, secret: str) -> None:
        self.port = port
        self.secret = secret
        self.received: list[Received] = []
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append(
            Received(time.monotonic(), headers, body, WebhookEvent.model_validate_json(body))
        )
        self.changed.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def signature_ok(self, item: Received) -> bool:
        verify(self.secret, item.headers, item.body)
        return True

    def of(self, recording_id: str) -> list[Received]:
        return [r for r in self.received if r.event.data.recording_id == recording_id]

    async def wait_for(self, recording_id: str, kind: str, within: float) -> Received:
        async with asyncio.timeout(within):
            while True:
                for item in self.of(recording_id):
                    if item.event.type.value == kind:
                        return item
                self.changed.clear()
                await self.changed.wait()


class TcpRelay:
    """Forwards 127.0.0.1:port to a target; `cut()` closes the listener and every connection (clients
    get connection refused), `restore()` listens again on the same port."""

    def __init__(self, port: int, target_port: int) -> None:
        self.port = port
        self.target_port = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        self._writers -= {writer, up_writer}


async def wait_process(process: subprocess.Popen[bytes], within: float) -> None:
    """Wait for a process without holding a thread of the default executor (which the recorder and the
    archive use for their blocking work) for the whole call."""
    async with asyncio.timeout(within):
        while process.poll() is None:  # noqa: ASYNC110 - polling a child process, bounded by the timeout
            await asyncio.sleep(0.05)


@dataclass
class Call:
    """A recorded call: the recording's info, the session, and the track names per participant."""

    info: RecordingInfo
    session: RecordingSession
    tracks: dict[str, list[str]] = field(default_factory=dict)


async def record_call(
    folder: Path,
    recording_id: str,
    listeners: list[Any],
    participants: dict[str, list[str]],
    references: dict[str, Path],
    workers: MuxWorkers,
    segment_seconds: float = 1.0,
    realtime: bool = True,
    during: Callable[[], Awaitable[None]] | None = None,
    room_id: str = "room-1",
) -> tuple[Call, list[TrackSummary], float]:
    """Start the recording (listeners' `recording_started`), stream each participant's media as RTP,
    run `during` concurrently, then stop the session. Returns the call, the summaries and the
    monotonic time session.stop() was called. The caller calls `recording_finished`."""
    info = RecordingInfo(
        recording_id=recording_id,
        folder=folder,
        room_id=room_id,
        call_id=f"call-{recording_id}",
        started_at=time.time(),
        participants=[
            ParticipantInfo(
                id=p, display_name=p.title(), metadata={"role": "agent" if i == 0 else "customer"}
            )
            for i, p in enumerate(participants)
        ],
    )
    session = RecordingSession(
        folder,
        RecorderSettings(segment_seconds=segment_seconds),
        workers,
        listeners,
    )
    call = Call(info, session)
    for listener in listeners:
        listener.recording_started(info)
    senders = []
    for participant, codecs in participants.items():
        for codec in codecs:
            kind = "audio" if codec == "opus" else "video"
            name = f"{participant}-{kind}"
            port = free_port_pair()
            c, rate, pt = CODECS[codec]
            await session.add_track(
                StreamSpec(
                    name=name,
                    codec=c,
                    payload_type=pt,
                    clock_rate=rate,
                    channels=2 if codec == "opus" else 1,
                    port=port,
                    rtcp_port=port + 1,
                    address="127.0.0.1",
                )
            )
            info.track_participants[name] = participant
            call.tracks.setdefault(participant, []).append(name)
            senders.append(rtp_sender(references[codec], port, pt, realtime=realtime))
    try:
        waits = [wait_process(s, 60) for s in senders]
        if during is not None:
            await asyncio.gather(during(), *waits)
        else:
            await asyncio.gather(*waits)
        await asyncio.sleep(0.3)
    finally:
        for s in senders:
            if s.poll() is None:
                s.kill()
        stopped = time.monotonic()
        summaries = await session.stop()
    info.finished_at = time.time()
    return call, summaries, stopped


def local_settings(receiver: Receiver, **overrides: object) -> ArchiveSettings:
    return ArchiveSettings.model_validate(
        {
            "signing": {"key_env": "CALLVAULT_TEST_NO_SUCH_VAR"},
            "spool": {"poll_interval": 0.1},
            "webhooks": {
                "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret}],
                "poll_interval": 0.1,
            },
            **overrides,
        }
    )


class FakeTrack:
    """Writes a track's files the way RecordingSession leaves them (contents are random bytes)."""

    def __init__(self, folder: Path, name: str, codec: Codec) -> None:
        self.folder = folder
        self.summary = TrackSummary(
            name=name,
            kind=codec.kind,
            codec=codec,
            clock_rate=90000 if codec.kind is MediaKind.VIDEO else 48000,
            payload_type=96,
            container="webm",
        )
        write_summary(folder, self.summary)

    def segment(self, index: int) -> SegmentInfo:
        rel = f"{self.summary.name}.segments/{index:06d}.webm"
        data = os.urandom(5000 + index)
        (self.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.folder / rel).write_bytes(data)
        info = SegmentInfo(
            index=index,
            path=rel,
            first_rtp_timestamp=index * 90000,
            last_rtp_timestamp=index * 90000 + 87000,
            frames=30,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.summary.segments.append(info)
        return info

    def finish(self, state: str = "complete") -> TrackSummary:
        self.summary.state = state
        self.summary.file = f"{self.summary.name}.webm"
        (self.folder / self.summary.file).write_bytes(
            b"".join((self.folder / s.path).read_bytes() for s in self.summary.segments)
        )
        write_summary(self.folder, self.summary)
        return self.summary


def new_info(folder: Path, recording_id: str) -> RecordingInfo:
    folder.mkdir(parents=True)
    return RecordingInfo(
        recording_id=recording_id,
        folder=folder,
        room_id="1234",
        started_at=time.time(),
        participants=[ParticipantInfo(id="agent-7", display_name="Agent")],
        track_participants={"video-0": "agent-7", "audio-1": "agent-7"},
    )


async def run_recording(
    archive: Archive, info: RecordingInfo, *, mux_failure: bool = False, tamper: bool = False
) -> list[TrackSummary]:
    archive.recording_started(info)
    tracks = [FakeTrack(info.folder, "video-0", Codec.VP8), FakeTrack(info.folder, "audio-1", Codec.OPUS)]
    for index in range(3):
        for track in tracks:
            archive.segment_closed(info.folder, track.summary.name, track.segment(index))
    if tamper:  # a segment changes on disk after it was closed and hashed
        (info.folder / tracks[0].summary.segments[1].path).write_bytes(b"changed")
    summaries = []
    for i, track in enumerate(tracks):
        summary = track.finish("failed" if mux_failure and i == 0 else "complete")
        archive.track_finished(info.folder, summary)
        summaries.append(summary)
    info.finished_at = time.time()
    await archive.recording_finished(info, summaries)
    return summaries
