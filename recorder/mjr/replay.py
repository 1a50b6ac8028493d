"""Replay one stream's stored RTP packets (with the times they arrived) through the recording pipeline
into a finished track: the same reorder buffer, frame assembly, segments, joined file and summary as a
live recording, without sockets or an event loop. Nothing here knows about .mjr: any source of
(arrival time, RTP packet bytes) in arrival order will do.

The pipeline's timer is stepped every `tick` seconds of arrival time, as the live session's timer
would; keyframe requests cannot be sent (nobody is listening) and are not counted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from recorder.assembly.pipeline import StreamPipeline
from recorder.config import RecorderSettings
from recorder.errors import MalformedPacketError, MuxError
from recorder.models import StreamSpec, TrackSummary
from recorder.mux.containers import segment_format
from recorder.mux.join import join_segments, segment_files
from recorder.mux.track_writer import TrackWriter, segments_dir
from recorder.rtp.packet import RtpPacket
from recorder.session import container_preference
from recorder.summaries import write_summary


def replay_track(
    folder: Path,
    spec: StreamSpec,
    packets: Iterable[tuple[float, bytes]],
    settings: RecorderSettings | None = None,
) -> TrackSummary:
    """Record `packets` ((arrival Unix time, RTP bytes), in arrival order) as track `spec.name` in
    `folder`: segments, the joined file and `<name>.json`. Packets of another payload type than the
    spec's, or of another SSRC than the first packet's, are counted as foreign (as the live ingest does
    once a track is locked). Returns the final summary (state 'failed' with the error when muxing failed)."""
    settings = settings or RecorderSettings()
    fmt = container_preference(spec.codec, settings)
    pipeline = StreamPipeline(
        spec,
        fmt.container.value,
        segment_seconds=settings.segment_seconds,
        reorder_packets=settings.reorder_packets,
        reorder_delay=settings.reorder_delay,
    )
    writer = TrackWriter(folder, spec, segment_format(spec.codec))
    tick = settings.tick_interval
    next_tick: float | None = None
    ssrc = spec.ssrc
    now = 0.0
    error: str | None = None
    try:
        for now, data in packets:
            if next_tick is None:
                next_tick = now + tick
            if now >= next_tick:
                while now >= next_tick:
                    pipeline.tick(next_tick)
                    next_tick += tick
                writer.write(pipeline.take_output())
            try:
                packet = RtpPacket.parse(data)
            except MalformedPacketError:
                pipeline.malformed += 1
                continue
            if packet.payload_type != spec.payload_type:
                pipeline.foreign_packets += 1
                continue
            if ssrc is None:
                ssrc = packet.ssrc
                pipeline.summary.ssrc = ssrc
            elif packet.ssrc != ssrc:
                pipeline.foreign_packets += 1
                continue
            pipeline.push(packet, now)
        pipeline.finish(now)
        writer.write(pipeline.take_output())
        pipeline.assembler.keyframe_needed = False
        summary = pipeline.counters()
        summary.keyframe_requests = 0
        summary.segments = writer.close()
    except MuxError as exc:
        error = str(exc)
        summary = pipeline.counters()
        summary.keyframe_requests = 0
        summary.segments = list(writer.segments)
        summary.state, summary.error = "failed", error
        summary.frames_unwritten = max(0, summary.frames - writer.frames_written)
        summary.frames, summary.keyframes = writer.frames_written, writer.keyframes_written
    if summary.segments:
        out = folder / f"{spec.name}.{fmt.extension}"
        try:
            joined = join_segments(segment_files(segments_dir(folder, spec.name)), out, fmt.container)
            summary.file, summary.duration = out.name, joined.duration
        except MuxError as exc:
            summary.state = "failed"
            summary.error = "; ".join(filter(None, (summary.error, f"segments not joined: {exc}")))
    if summary.state == "recording":
        summary.state = "complete"
    write_summary(folder, summary)
    if (not settings.keep_segments and summary.file is not None) or not summary.segments:
        shutil.rmtree(segments_dir(folder, spec.name), ignore_errors=True)
    return summary
