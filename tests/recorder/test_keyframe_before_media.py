"""A video track asks for a keyframe before any RTP came, as soon as it knows where RTCP goes.

Janus's simulcast forwarder forwards nothing until the publisher sends a keyframe. Made while a call is
under way (recording turned on mid-call, a late event), it never gets one unless somebody asks: the
recorder, whose PLI Janus relays from the forwarder's RTCP port. Before any RTP the track knows no media
SSRC, but it knows the RTCP path: Janus latches it with two empty RTP headers as it creates the
forwarder. Janus relays any PLI on that port, so it names media SSRC 0. Before the fix the track waited
for RTP that never came: nothing was recorded until a keyframe happened to come (about 6 s in one run of
the Chromium simulcast test). Real UDP on loopback; a socket plays Janus.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from recorder.config import RecorderSettings
from recorder.models import Codec, StreamSpec
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_video_track_asks_for_a_keyframe_before_its_first_packet(tmp_path: Path) -> None:
    workers = MuxWorkers(1)
    session = RecordingSession(tmp_path / "rec", RecorderSettings(), workers)
    janus = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    janus.bind(("127.0.0.1", 0))
    janus.setblocking(False)
    try:
        spec = StreamSpec(name="video-1", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=0,
                          rtcp_port=free_port(), address="127.0.0.1")  # fmt: skip
        track = await session.add_track(spec)
        assert track.rtcp_port is not None
        for _ in range(2):  # what Janus sends as it creates a forwarder with an rtcp_port
            janus.sendto(b"\x80\x00" + bytes(10), ("127.0.0.1", track.rtcp_port))
        plis: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.5
        while loop.time() < deadline and len(plis) < 2:
            try:
                plis.append(janus.recv(1500))
            except BlockingIOError:
                await asyncio.sleep(0.02)
        assert plis, "no keyframe request reached the sender before its first RTP packet"
        pli = plis[0]
        assert len(pli) == 12 and pli[0] == 0x81 and pli[1] == 206  # PSFB, FMT 1: PLI
        assert pli[8:12] == bytes(4)  # media SSRC not known yet
        assert len(plis) == 2, "the request is repeated while nothing comes"
        assert track.receiver.pli_sent == len(plis)
        assert track.pipeline.counters().keyframe_requests == len(plis)
    finally:
        janus.close()
        await session.stop()
        workers.shutdown()
