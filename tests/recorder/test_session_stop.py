"""Stopping a session finishes all of its tracks at once: each track's last segment reaches the listeners
(the archive queues its upload) before the track is joined, and `stop()` returns the summaries in the
order the tracks were added, each track joined and complete, bit-exact with what was sent."""

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


class Witness:
    """Notes, for each closed segment, which of its track's files (`<track>.*`) existed at that moment."""

    def __init__(self) -> None:
        self.segments: list[tuple[str, int, set[str]]] = []
        self.finished: list[str] = []

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        files = {p.name for p in folder.glob(f"{track}.*") if p.is_file()}
        self.segments.append((track, segment.index, files))

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        self.finished.append(summary.name)


async def test_stop_hands_over_the_last_segments_before_joining_and_keeps_the_track_order(
    tmp_path: Path,
) -> None:
    codecs = [("opus", 111), ("vp8", 96), ("opus", 111)]
    references = {c: encode_reference(c, tmp_path, 2.0) for c in ("opus", "vp8")}
    ports = [free_udp_port_pair() for _ in codecs]
    specs = parse_sdp(sdp_for([(c, port, pt) for (c, pt), port in zip(codecs, ports, strict=True)]))
    workers = MuxWorkers(1)
    witness = Witness()
    session = RecordingSession(tmp_path / "rec", RecorderSettings(segment_seconds=0.5), workers, [witness])
    names = []
    for i, parsed in enumerate(specs):
        spec = parsed.model_copy(update={"name": f"track-{i}"})
        names.append(spec.name)
        await session.add_track(spec)
    senders = [rtp_sender(references[c], port, pt) for (c, pt), port in zip(codecs, ports, strict=True)]
    try:
        for sender in senders:
            await asyncio.to_thread(sender.wait, 60)
        await asyncio.sleep(0.3)  # the last datagrams reach the socket (not an assertion)
    finally:
        summaries = await session.stop()
        workers.shutdown()
    assert [s.name for s in summaries] == names
    assert sorted(witness.finished) == sorted(names)
    for (codec, _), summary in zip(codecs, summaries, strict=True):
        assert summary.state == "complete" and summary.file is not None
        assert read_packets(tmp_path / "rec" / summary.file).data == read_packets(references[codec]).data
        announced = [(index, files) for track, index, files in witness.segments if track == summary.name]
        assert [index for index, _ in announced] == [s.index for s in summary.segments]
        assert len(announced) >= 2
        assert not any(summary.file in files for _, files in announced)  # the last too: before the join
