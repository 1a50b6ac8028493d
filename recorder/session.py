"""A recording: a folder and the tracks being recorded into it.

Tracks can be added and finished while the recording runs (participants join and leave). A timer
flushes each track's frames to its mux worker, sends keyframe requests, and rewrites each track's
summary JSON now and then so that a crash leaves an up-to-date account behind. Finishing a track
closes its last segment, joins its segments into one file and writes the final summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from recorder.assembly.pipeline import StreamPipeline
from recorder.capture.recorder import CaptureRecorder
from recorder.capture.writer import capture_track
from recorder.config import RecorderSettings
from recorder.crypto.srtp import SrtpKey, SrtpReceiver
from recorder.errors import MuxError
from recorder.ingest.track import Network, TrackReceiver
from recorder.ingest.udp import DatagramSocket
from recorder.models import Codec, SegmentInfo, StreamSpec, TrackSummary
from recorder.mux.containers import ContainerFormat, container_for, segment_format
from recorder.mux.join import join_segments, segment_files
from recorder.mux.track_writer import TrackWriter, segments_dir
from recorder.mux.workers import MuxWorkers
from recorder.summaries import summary_json, write_summary

log = logging.getLogger(__name__)

JOIN_THREADS = 2
_JOINS = ThreadPoolExecutor(JOIN_THREADS, thread_name_prefix="join")
"""Finished tracks are joined here, in the order they were handed over, rather than in asyncio's
default pool: when ten calls end together, their 40 joins (CPU-bound, holding the GIL between packets)
no longer all run at once and all end together, but call by call, so the first call's uploads start
while the last call's tracks are still being joined."""

SUMMARY_INTERVAL = 2.0  # seconds between checks for live summaries to rewrite
SUMMARY_REFRESH = 10.0  # a live summary is rewritten at least this often, and whenever a segment closed


class SessionListener(Protocol):
    """What a recording session tells the parts downstream (upload, manifest, webhooks). Called on the
    event loop; implementations must only queue work, never block."""

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None: ...

    def track_finished(self, folder: Path, summary: TrackSummary) -> None: ...


@dataclass
class Track:
    spec: StreamSpec
    fmt: ContainerFormat
    pipeline: StreamPipeline
    receiver: TrackReceiver
    writer: TrackWriter
    segments_announced: int = 0
    summary_segments: int = 0  # segments listed in the summary last written
    summary_written: float = 0.0

    @property
    def port(self) -> int:
        sock = self.receiver.rtp_socket
        assert sock is not None
        return sock.port

    @property
    def rtcp_port(self) -> int | None:
        sock = self.receiver.rtcp_socket
        if sock is None:
            return self.port if self.spec.rtcp_port == self.spec.port else None
        return sock.port


def container_preference(codec: Codec, settings: RecorderSettings) -> ContainerFormat:
    preferred = settings.audio_container if codec is Codec.OPUS else None
    if codec is Codec.H264:
        preferred = settings.h264_container
    return container_for(codec, preferred)


class RecordingSession:
    def __init__(
        self,
        folder: Path,
        settings: RecorderSettings,
        workers: MuxWorkers,
        listeners: Sequence[SessionListener] = (),
        sources: Sequence[Network] | None = None,
    ) -> None:
        """`sources`: the networks media may come from (None: any); each track locks to one sender."""
        self.folder = folder
        self.sources = sources
        self.settings = settings
        self.workers = workers
        self.listeners = list(listeners)
        self.tracks: dict[str, Track] = {}
        self.finished: dict[str, TrackSummary] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._last_summary = 0.0
        self.capture = settings.capture
        """Keep every packet of the tracks added from now on in pcapng captures (docs/forensics.md)."""
        self.captures: CaptureRecorder | None = None
        folder.mkdir(parents=True, exist_ok=True)

    async def add_track(self, spec: StreamSpec, srtp: SrtpKey | None = None) -> Track:
        """Bind the track's sockets and start recording it. Port 0 picks a free port. With `srtp`, the
        SFU sends SRTP under that key (the forward leg's encryption): it is decrypted at the socket."""
        if spec.name in self.tracks or spec.name in self.finished:
            raise ValueError(f"track {spec.name!r} is already part of this recording")
        fmt = container_preference(spec.codec, self.settings)
        pipeline = StreamPipeline(
            spec,
            fmt.container.value,
            segment_seconds=self.settings.segment_seconds,
            reorder_packets=self.settings.reorder_packets,
            reorder_delay=self.settings.reorder_delay,
        )
        receiver = TrackReceiver(spec, pipeline, self.sources, SrtpReceiver(srtp) if srtp else None)
        receiver.rtp_socket = DatagramSocket(spec.address, spec.port, receiver.datagram_received)
        if spec.rtcp_port is not None and spec.rtcp_port != spec.port:
            try:
                receiver.rtcp_socket = DatagramSocket(spec.address, spec.rtcp_port, receiver.rtcp_received)
            except OSError:
                receiver.close()
                raise
        writer = await asyncio.to_thread(TrackWriter, self.folder, spec, segment_format(spec.codec))
        self.workers.attach(writer)
        track = Track(spec, fmt, pipeline, receiver, writer)
        self.tracks[spec.name] = track
        if self.capture:
            await self._capture(track)
        await asyncio.to_thread(write_summary, self.folder, pipeline.counters().model_copy(deep=True))
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name=f"tick {self.folder.name}")
        log.info(
            "recording %s (%s, PT %d) on UDP port %d", spec.name, spec.codec, spec.payload_type, track.port
        )
        return track

    async def finish_track(self, name: str) -> TrackSummary:
        """Stop receiving, flush, close and join the track's segments; returns its final summary."""
        track = self.tracks.pop(name)
        track.receiver.close()
        pipeline = track.pipeline
        pipeline.finish(time.time())
        self._flush(track)
        summary = pipeline.counters()
        try:
            summary.segments = await self.workers.close(track.writer)
        except MuxError as exc:
            # The segments written before the error (the last one cut back to its whole clusters) are
            # kept and listed; the summary counts the frames they hold, and the rest as unwritten.
            log.error("track %s failed while muxing: %s", name, exc)
            summary.segments = list(track.writer.segments)
            summary.state = "failed"
            summary.error = str(exc)
            summary.frames_unwritten = max(0, summary.frames - track.writer.frames_written)
            summary.frames = track.writer.frames_written
            summary.keyframes = track.writer.keyframes_written
        # The last segments go to the listeners (the archive queues their upload) before the join, which
        # they need not wait for.
        self._announce_segments(track, summary.segments)
        if summary.segments:
            out = self.folder / f"{name}.{track.fmt.extension}"
            try:
                joined = await asyncio.get_running_loop().run_in_executor(
                    _JOINS,
                    join_segments,
                    segment_files(segments_dir(self.folder, name)),
                    out,
                    track.fmt.container,
                )
                summary.file = out.name
                summary.file_sha256 = joined.sha256
                summary.duration = joined.duration
            except MuxError as exc:
                log.error("track %s: cannot join segments: %s", name, exc)
                summary.state = "failed"
                summary.error = "; ".join(filter(None, (summary.error, f"segments not joined: {exc}")))
        if summary.state == "recording":
            summary.state = "complete"
        if self.captures is not None:
            self._announce_capture(name, await self.captures.finish(name))
        try:
            await asyncio.to_thread(write_summary, self.folder, summary)
        except OSError as exc:  # the segments stay, so recovery can write it later
            log.error("track %s: cannot write its final summary: %s", name, exc)
        else:
            if not self.settings.keep_segments and summary.file is not None:
                await asyncio.to_thread(shutil.rmtree, segments_dir(self.folder, name), ignore_errors=True)
        self.finished[name] = summary
        for listener in self.listeners:
            try:
                listener.track_finished(self.folder, summary)
            except Exception:
                log.exception("track %s: %s failed on the finished track", name, listener)
        return summary

    async def stop(self) -> list[TrackSummary]:
        """Finish every track still running; returns every finished track's summary."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        names = list(self.tracks)
        # All tracks at once, so that their joins queue together (_JOINS) and the call is done before
        # the calls that stopped after it; in the order of the tracks in `finished` as before.
        done = await asyncio.gather(*(self.finish_track(name) for name in names), return_exceptions=True)
        for name in names:
            if name in self.finished:
                self.finished[name] = self.finished.pop(name)
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        if self.captures is not None:
            await self.captures.close()
            self.captures = None
        return list(self.finished.values())

    def pause(self, names: list[str] | None = None, by: str | None = None, reason: str | None = None) -> None:
        """Stop recording the named tracks (all when None) at once: their packets are dropped unread."""
        now = time.time()
        for name in names if names is not None else list(self.tracks):
            if name in self.tracks:
                self.tracks[name].pipeline.pause(now, by, reason)
                if self.captures is not None:
                    self.captures.pause(name, now, by, reason)

    def name_forwarder(self, name: str, **fields: object) -> None:
        """What the SFU calls the track's forwarder (e.g. a Janus stream id), for the track's capture."""
        if self.captures is not None:
            self.captures.label(name, time.time(), **fields)

    def resume(self, names: list[str] | None = None) -> None:
        """Record the named tracks (all when None) again, from their next keyframe (asked for now)."""
        now = time.time()
        for name in names if names is not None else list(self.tracks):
            track = self.tracks.get(name)
            if track is not None:
                track.pipeline.resume(now)
                if self.captures is not None:
                    self.captures.resume(name, now)
                if track.pipeline.take_keyframe_request(now) and not track.receiver.request_keyframe():
                    track.pipeline.keyframe_request_failed()

    def _flush(self, track: Track) -> None:
        items = track.pipeline.take_output()
        if items:
            self.workers.write(track.writer, items)

    async def _tick_loop(self) -> None:
        interval = self.settings.tick_interval
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for track in list(self.tracks.values()):
                try:
                    self._tick_track(track, now)
                except Exception:  # one track's failure never stops the timer of the others
                    log.exception("track %s: timer step failed", track.spec.name)
            if now - self._last_summary >= SUMMARY_INTERVAL:
                self._last_summary = now
                snapshots = []
                for track in self.tracks.values():
                    segments = list(track.writer.segments)
                    if (
                        len(segments) == track.summary_segments
                        and now - track.summary_written < SUMMARY_REFRESH
                    ):
                        continue
                    track.summary_segments, track.summary_written = len(segments), now
                    # Serialized here, on the loop (pydantic-core, fast), rather than deep-copied for the
                    # writer thread: a deep copy of a pydantic model is Python code, per object.
                    summary = track.pipeline.counters().model_copy(update={"segments": segments})
                    snapshots.append((summary, summary_json(summary)))
                if snapshots:
                    try:
                        await asyncio.to_thread(self._write_summaries, snapshots)
                    except Exception:  # a checkpoint; the final summary is written at finish
                        log.exception("recording %s: live summaries not written", self.folder.name)

    def _tick_track(self, track: Track, now: float) -> None:
        items = track.receiver.tick(now)
        if items:
            self.workers.write(track.writer, items)
        self._announce_segments(track, track.writer.segments)
        if self.captures is not None:
            self._announce_capture(track.spec.name, self.captures.tick(track.spec.name))

    def _announce_segments(self, track: Track, segments: list[SegmentInfo]) -> None:
        """Tell listeners about segments the mux worker has closed since the last call."""
        if len(segments) == track.segments_announced:
            return
        closed = segments[track.segments_announced :]
        track.segments_announced += len(closed)
        for segment in closed:
            for listener in self.listeners:
                try:
                    listener.segment_closed(self.folder, track.spec.name, segment)
                except Exception:  # a broken listener never stops the recording or the other listeners
                    log.exception("track %s: %s failed on a closed segment", track.spec.name, listener)

    async def _capture(self, track: Track) -> None:
        """Capture the track's packets as received (recorder/capture)."""
        if self.captures is None:
            self.captures = CaptureRecorder(self.folder, self.settings)
        address = track.spec.address
        rtcp = track.rtcp_port
        track.receiver.capture = await self.captures.add(
            track.spec,
            (address, track.port),
            (address, rtcp) if rtcp is not None else None,
            [f"recording {self.folder.name}"],
        )

    def _announce_capture(self, name: str, segments: list[SegmentInfo]) -> None:
        """Capture segments go the way media segments go (hashed, chained, stored) under
        `<track>.capture`."""
        for segment in segments:
            for listener in self.listeners:
                try:
                    listener.segment_closed(self.folder, capture_track(name), segment)
                except Exception:
                    log.exception("track %s: %s failed on a closed capture segment", name, listener)

    def _write_summaries(self, summaries: list[tuple[TrackSummary, bytes]]) -> None:
        for summary, data in summaries:
            write_summary(self.folder, summary, data)
