"""The e2e infrastructure itself: real aiortc publishers (one VP8, one H.264) publish into a real Janus
VideoRoom inside a network namespace; ``rtp_forward`` sends both to a RecordingSession in the same
namespace; the recorded files decode and carry the publishers' frame counters in order, without
duplicates or gaps, and the audio is the tone that was sent.

The VP8 publisher is forwarded as soon as Janus answers its offer (before its media starts: recorded from
frame 0); the H.264 one only ``LATE`` seconds into its media, so its recording starts at the keyframe the
recorder asks for with a PLI, which travels through Janus's ``local_rtcp_port`` to the publisher.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from frame_marks import gaps, pinned_counters, read_marks
from janus_fixture import ADMIN_KEY, ROOM, ROOM_SECRET, JanusServer
from media import ffprobe_errors
from netns import NetNamespace
from webrtc import PublisherProcess

from janus_bridge.client import JanusClient
from janus_bridge.videoroom import ForwardStream
from recorder.config import RecorderSettings
from recorder.models import Codec, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow

SECONDS = 5.0
FPS = 30
TONES = {"vp8": 440.0, "h264": 660.0}
LATE = {"vp8": 0.0, "h264": 1.0}
"""Seconds of media before the publisher's forwarders are created."""
VIDEO_PT = 96
AUDIO_PT = 111


def free_udp_port() -> int:
    """A free UDP port on 127.0.0.1 of the current thread's namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ffprobe_frames(path: Path) -> int:
    """Frames ffprobe counts by decoding the first stream (fails the test if ffprobe cannot read it)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "0", "-show_entries",
         "stream=codec_name,nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    return int(json.loads(out)["streams"][0]["nb_read_frames"])


def dominant_frequency(path: Path) -> float:
    """The strongest frequency (Hz) of a recorded audio file's first channel."""
    chunks = []
    rate = 48000
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            channels = frame.layout.nb_channels
            data = frame.to_ndarray()
            chunks.append(data[0] if frame.format.is_planar else data[0][::channels])
            rate = frame.sample_rate
    samples = np.concatenate(chunks).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


async def forward_publisher(
    client: JanusClient, session: RecordingSession, published: dict[str, Any], codec: str
) -> dict[str, Any]:
    """Add an audio and a video track to ``session`` and point the publisher's forwarders at them."""
    mids = {s["type"]: s["mid"] for s in published["streams"]}
    audio = await session.add_track(
        StreamSpec(name=f"{codec}-audio", codec=Codec.OPUS, payload_type=AUDIO_PT, clock_rate=48000,
                   channels=2, port=0, address="127.0.0.1")
    )  # fmt: skip
    video = await session.add_track(
        StreamSpec(name=f"{codec}-video", codec=Codec.VP8 if codec == "vp8" else Codec.H264,
                   payload_type=VIDEO_PT, clock_rate=90000, port=0, rtcp_port=free_udp_port(),
                   address="127.0.0.1")
    )  # fmt: skip
    assert video.rtcp_port is not None
    room = await client.videoroom()
    forwarders = await room.rtp_forward(
        ROOM,
        published["id"],
        "127.0.0.1",
        [
            ForwardStream(mids["audio"], audio.port, pt=AUDIO_PT),
            ForwardStream(mids["video"], video.port, rtcp_port=video.rtcp_port, pt=VIDEO_PT),
        ],
        secret=ROOM_SECRET,
        admin_key=ADMIN_KEY,
    )
    return {f.type: f for f in forwarders}


async def test_vp8_and_h264_publishers_are_recorded_frame_by_frame(
    netns_for_test: NetNamespace, janus_in_netns: JanusServer, tmp_path: Path
) -> None:
    ns, janus = netns_for_test, janus_in_netns
    folder = tmp_path / "rec"
    workers = MuxWorkers(2)
    session = RecordingSession(folder, RecorderSettings(segment_seconds=2.0), workers)
    publishers: dict[str, PublisherProcess] = {}
    try:
        async with JanusClient(janus.ws_url, request_timeout=5.0) as client:
            for codec in ("vp8", "h264"):
                publishers[codec] = await PublisherProcess.start(
                    janus.ws_url, ROOM, f"pub-{codec}", codec=codec, seconds=SECONDS, fps=FPS,
                    ice_address=ns.address, netns=ns.name, extra=["--tone", str(TONES[codec])],
                )  # fmt: skip
            for codec, publisher in publishers.items():
                published = await publisher.event("published")
                kinds = {s["type"]: s["codec"] for s in published["streams"]}
                assert kinds == {"audio": "opus", "video": codec}
                if LATE[codec]:
                    await publisher.event("media")
                    await asyncio.sleep(LATE[codec])
                await forward_publisher(client, session, published, codec)
            done = {codec: await p.finish(within=SECONDS + 20) for codec, p in publishers.items()}
        await asyncio.sleep(0.3)
    finally:
        for p in publishers.values():
            p.kill()
        summaries = {s.name: s for s in await session.stop()}
        workers.shutdown()

    report = {}
    for codec, sent in done.items():
        assert sent["frames"] == SECONDS * FPS and sent["counters"] == list(range(int(SECONDS * FPS)))
        video: TrackSummary = summaries[f"{codec}-video"]
        audio: TrackSummary = summaries[f"{codec}-audio"]
        for track in (video, audio):
            assert track.state == "complete" and track.file is not None, track
            assert ffprobe_errors(folder / track.file) == "", track.file
            assert ffprobe_frames(folder / track.file) == track.frames
        marks = read_marks(folder / video.file)  # type: ignore[operator]
        counters = pinned_counters(marks)
        unreadable = [i for i, c in enumerate(counters) if c is None]
        assert not unreadable, f"{codec}: frames without a readable counter: {unreadable}"
        recorded = [c for c in counters if c is not None]
        assert recorded == sorted(set(recorded)), f"{codec}: counters not strictly increasing"
        assert gaps(recorded) == [], f"{codec}: frames missing between {gaps(recorded)}"
        assert set(recorded) <= set(sent["counters"])
        assert recorded[-1] == sent["counters"][-1], f"{codec}: the last frames were not recorded"
        # Forwarded late: recorded from the keyframe the recorder's PLI brings (tens of ms after the forward
        # when its first PLI goes out, ~0.6 s when that first PLI was attempted before any packet/RTCP latch
        # arrived: the session still counts it and rate-limits the next one by 0.5 s).
        latest_start = (LATE[codec] + 1.0) * FPS
        assert recorded[0] <= latest_start, f"{codec}: recording started only at frame {recorded[0]}"
        assert marks[0].keyframe
        assert (video.width, video.height) == (320, 240)
        assert abs(dominant_frequency(folder / audio.file) - TONES[codec]) < 5  # type: ignore[operator]
        report[codec] = {
            "first_recorded": recorded[0],
            "keyframe_after_forward_s": round(recorded[0] / FPS - LATE[codec], 3),
            "frames": len(recorded),
            "keyframes": video.keyframes,
            "keyframe_requests": video.keyframe_requests,
            "timings": sent["timings"],
            "audio_frames": audio.frames,
        }
    print(json.dumps(report, indent=1))
