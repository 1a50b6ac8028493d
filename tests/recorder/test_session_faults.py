"""One failing part never stops a recording: a listener that raises on every closed segment (a broken
sink) is logged, and every track still records to the end and finishes `complete`. Before, the exception
killed the session's timer (no more frames flushed) and `stop()` re-raised it, finishing no track."""

from __future__ import annotations

import asyncio
from pathlib import Path

from janus_fixture import free_udp_port_pair
from media import encode_reference, read_packets, rtp_sender, sdp_for

from recorder.config import RecorderSettings
from recorder.models import SegmentInfo, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession


class BrokenSink:
    def __init__(self) -> None:
        self.calls = 0

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        self.calls += 1
        raise RuntimeError("the sink is broken")

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        pass


async def test_a_broken_listener_does_not_stop_the_recording(tmp_path: Path) -> None:
    reference = encode_reference("opus", tmp_path, 3.0)
    port = free_udp_port_pair()
    (spec,) = parse_sdp(sdp_for([("opus", port, 111)]))
    workers = MuxWorkers(1)
    sink = BrokenSink()
    session = RecordingSession(tmp_path / "rec", RecorderSettings(segment_seconds=0.5), workers, [sink])
    await session.add_track(spec)
    sender = rtp_sender(reference, port, 111)
    try:
        await asyncio.to_thread(sender.wait, 60)
        await asyncio.sleep(0.3)
    finally:
        (summary,) = await session.stop()
        workers.shutdown()
    assert sink.calls >= 3  # it kept being told, and kept failing
    assert summary.state == "complete" and summary.file is not None
    assert read_packets(tmp_path / "rec" / summary.file).data == read_packets(reference).data
