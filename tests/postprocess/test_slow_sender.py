"""A sender slower than real time (issue 19, item 2): its packets arrive over twice the media time they
carry. The summary says both durations, each named for its clock, and reading the track compares the
file with the media clock: no false "ends at 2.0 s of 3.9 s" damage warning, and the joined file is
used, not the segments."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from janus_fixture import free_udp_port_pair
from media import encode_reference, read_packets, rtp_sender, sdp_for

from postprocess.inputs import load_recording
from postprocess.readers import _Decoded
from recorder.config import RecorderSettings
from recorder.mux.workers import MuxWorkers
from recorder.rtp.packet import RtpPacket
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

SLOWNESS = 2.0  # wall seconds per media second


def capture(reference: Path) -> list[bytes]:
    port = free_udp_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.settimeout(2.0)
        sender = rtp_sender(reference, port, 96, realtime=False)
        packets: list[bytes] = []
        try:
            while True:
                packets.append(sock.recv(2048))
        except TimeoutError:
            pass
        sender.wait(30)
    return [p for p in packets if not 192 <= p[1] <= 223]


async def test_a_slow_sender_is_not_reported_as_damage(tmp_path: Path) -> None:
    reference = encode_reference("vp8", tmp_path, 2.0)
    packets = capture(reference)
    port = free_udp_port_pair()
    (spec,) = parse_sdp(sdp_for([("vp8", port, 96)]))
    workers = MuxWorkers(1)
    folder = tmp_path / "rec"
    session = RecordingSession(folder, RecorderSettings(segment_seconds=1.0), workers)
    await session.add_track(spec)
    loop = asyncio.get_running_loop()
    start, ts0 = loop.time(), RtpPacket.parse(packets[0]).timestamp
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for data in packets:
            due = start + SLOWNESS * ((RtpPacket.parse(data).timestamp - ts0) & 0xFFFFFFFF) / 90000
            await asyncio.sleep(max(0.0, due - loop.time()))
            out.sendto(data, ("127.0.0.1", port))
    await asyncio.sleep(0.3)
    (summary,) = await session.stop()
    workers.shutdown()

    sent = read_packets(reference)
    assert summary.media_seconds is not None and summary.arrival_seconds is not None
    assert abs(summary.media_seconds - (len(sent.data) - 1) / 30) < 0.01
    assert summary.arrival_seconds > 1.8 * summary.media_seconds  # the wall clock ran twice as long
    (track,) = load_recording(folder).tracks
    decoded = _Decoded(track, "video")
    frames = [media for media, _ in decoded.frames()]
    assert decoded.problems == [] and len(frames) == len(sent.data)
