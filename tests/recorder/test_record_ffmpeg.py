"""End to end with an independent encoder: Debian's ffmpeg streams reference files as RTP (`-c copy`,
so the frames on the wire are exactly the reference file's), CallVault records them, and the recorded
packets must be the sent frames bit for bit, last as long, and decode cleanly with ffmpeg."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from media import (
    encode_reference,
    ffprobe_errors,
    read_packets,
    rtp_sender,
    sdp_for,
    slice_nals,
)

from recorder.commands.demo import free_port_pair
from recorder.config import RecorderSettings
from recorder.models import SegmentInfo, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow
SECONDS = 3.0


class Listener:
    """Records what the session announces, as the uploader will consume it."""

    def __init__(self) -> None:
        self.segments: list[tuple[str, SegmentInfo]] = []
        self.finished: list[TrackSummary] = []

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        self.segments.append((track, segment))

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        self.finished.append(summary)


LISTENER = Listener()


async def record_sent(
    tmp_path: Path, codecs: list[str], segment_seconds: float = 1.0, **settings: object
) -> dict[str, tuple]:
    refs = {c: encode_reference(c, tmp_path, SECONDS) for c in codecs}
    ports = {c: free_port_pair() for c in codecs}
    specs = parse_sdp(sdp_for([(c, ports[c], 96 + i) for i, c in enumerate(codecs)]))
    workers = MuxWorkers(2)
    session = RecordingSession(
        tmp_path / "rec", RecorderSettings(segment_seconds=segment_seconds, **settings), workers, [LISTENER]
    )
    for spec in specs:
        await session.add_track(spec)
    senders = [rtp_sender(refs[c], ports[c], 96 + i) for i, c in enumerate(codecs)]
    try:
        for s in senders:
            await asyncio.to_thread(s.wait, 60)
        await asyncio.sleep(0.3)
    finally:
        summaries = await session.stop()
        workers.shutdown()
    for s in senders:
        assert s.returncode == 0, s.stderr.read() if s.stderr else ""
    by_codec = {}
    for codec, spec in zip(codecs, specs, strict=True):
        summary = next(x for x in summaries if x.name == spec.name)
        by_codec[codec] = (refs[codec], summary)
    return by_codec


def assert_same_frames(ref: Path, summary: TrackSummary, folder: Path, codec: str) -> None:
    assert summary.state == "complete" and summary.file is not None
    recorded_path = folder / summary.file
    sent, got = read_packets(ref), read_packets(recorded_path)
    if codec == "h264":
        assert [slice_nals(p) for p in got.data] == [slice_nals(p) for p in sent.data]
        sent_duration = (len(sent.data) - 1) / 30
    else:
        assert got.data == sent.data  # every frame, bit for bit, in order
        sent_duration = sent.duration
    assert got.keyframes[0] and sum(got.keyframes) == sum(sent.keyframes)
    frame = 1 / 30 if codec != "opus" else 0.02
    assert abs(got.duration - sent_duration) <= frame + 1e-3
    assert ffprobe_errors(recorded_path) == ""
    assert summary.frames == len(sent.data) and summary.packets_lost == 0
    # Every closed segment plays on its own.
    assert len(summary.segments) >= 2
    for seg in summary.segments:
        assert ffprobe_errors(folder / seg.path) == ""


async def test_vp8_and_opus_recorded_bit_for_bit(tmp_path: Path) -> None:
    LISTENER.segments.clear()
    LISTENER.finished.clear()
    tracks = await record_sent(tmp_path, ["vp8", "opus"])
    # Every closed segment was announced once, in order, and every track's end too.
    for _, summary in tracks.values():
        announced = [seg for track, seg in LISTENER.segments if track == summary.name]
        assert announced == summary.segments
    assert sorted(s.name for s in LISTENER.finished) == sorted(s.name for _, s in tracks.values())
    for codec, (ref, summary) in tracks.items():
        assert_same_frames(ref, summary, tmp_path / "rec", codec)
    assert (tmp_path / "rec" / f"{tracks['vp8'][1].name}.webm").exists()
    assert tracks["vp8"][1].width == 320 and tracks["vp8"][1].height == 240


@pytest.mark.parametrize("container", ["matroska", "mp4"])
async def test_h264_recorded_bit_for_bit(tmp_path: Path, container: str) -> None:
    tracks = await record_sent(tmp_path, ["h264"], h264_container=container)
    ((ref, summary),) = tracks.values()
    assert_same_frames(ref, summary, tmp_path / "rec", "h264")
    assert summary.file is not None and summary.file.endswith(".mkv" if container == "matroska" else ".mp4")
    assert (summary.width, summary.height) == (320, 240)


async def test_vp9_recorded_bit_for_bit(tmp_path: Path) -> None:
    ((ref, summary),) = (await record_sent(tmp_path, ["vp9"])).values()
    assert_same_frames(ref, summary, tmp_path / "rec", "vp9")
