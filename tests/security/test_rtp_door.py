"""The RTP door, tried as an attacker would (issue 10): packets injected from another port with the real
SSRC and the very sequence numbers the sender is about to use, a spoofed RTCP packet that would redirect
keyframe requests, senders outside the SFU's network, and a junk flood. Real sockets on 127.0.0.1, real
ffmpeg-encoded media. Before the fix the injected packets were written into the file (the real ones then
dropped as duplicates) and any packet on the RTCP port took the PLI path over."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess
from pathlib import Path

import pytest
from janus_fixture import free_udp_port_pair
from media import encode_reference, ffprobe_errors, read_packets, rtp_sender, sdp_for

from recorder.config import RecorderSettings
from recorder.mux.workers import MuxWorkers
from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtcp import PictureLossIndication, parse_rtcp
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

PT = {"vp8": 96, "opus": 111}


def capture_rtp(reference: Path, codec: str) -> list[bytes]:
    """The RTP packets ffmpeg sends for a reference file (`-c copy`, as fast as it can), in order."""
    port = free_udp_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind(("127.0.0.1", port))
        sock.settimeout(2.0)
        sender = rtp_sender(reference, port, PT[codec], realtime=False)
        packets: list[bytes] = []
        try:
            while True:
                packets.append(sock.recv(2048))
        except TimeoutError:
            pass
        finally:
            sender.wait(30)
    assert sender.returncode == 0 and len(packets) > 50
    return packets


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[bytes]]]:
    folder = tmp_path_factory.mktemp("ref")
    out = {}
    for codec in PT:
        ref = encode_reference(codec, folder, 2.0)
        out[codec] = (ref, capture_rtp(ref, codec))
    return out


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


async def recording(
    tmp_path: Path, codec: str, sources: list[str] | None = None
) -> tuple[RecordingSession, int]:
    port = free_udp_port_pair()
    (spec,) = parse_sdp(sdp_for([(codec, port, PT[codec])]))
    networks = [ipaddress.ip_network(s) for s in sources] if sources is not None else None
    workers = MuxWorkers(1)
    session = RecordingSession(
        tmp_path / "rec", RecorderSettings(segment_seconds=1.0), workers, sources=networks
    )
    await session.add_track(spec)
    return session, port


async def finish(session: RecordingSession) -> None:
    await session.stop()
    session.workers.shutdown()


@pytest.mark.parametrize("codec", ["vp8", "opus"])
async def test_injected_packets_from_another_port_never_reach_the_file(
    tmp_path: Path, media: dict[str, tuple[Path, list[bytes]]], codec: str
) -> None:
    reference, packets = media[codec]
    session, port = await recording(tmp_path, codec)
    (track,) = session.tracks.values()
    sfu, attacker = udp(), udp()
    injected = 0
    try:
        for i, data in enumerate(packets):
            if i >= 10:  # the attacker saw the stream start: it knows the SSRC and the next numbers
                real = RtpPacket.parse(data)
                forged = RtpPacket(real.payload_type, real.sequence_number, real.timestamp, real.ssrc,
                                   os.urandom(len(real.payload)), marker=real.marker)  # fmt: skip
                attacker.sendto(forged.serialize(), ("127.0.0.1", port))
                injected += 1
            sfu.sendto(data, ("127.0.0.1", port))
            await asyncio.sleep(0.001 if i % 4 == 0 else 0)
        await asyncio.sleep(0.3)
        assert track.receiver.sender == sfu.getsockname()
    finally:
        await finish(session)
        sfu.close()
        attacker.close()
    (summary,) = session.finished.values()
    assert summary.file is not None and injected > 40
    recorded = tmp_path / "rec" / summary.file
    assert (
        read_packets(recorded).data == read_packets(reference).data
    )  # every frame the sender's, bit for bit
    assert ffprobe_errors(recorded) == ""
    assert summary.packets_lost == 0 and summary.frames_dropped == 0 and summary.packets_duplicate == 0


async def test_spoofed_rtcp_cannot_redirect_keyframe_requests(
    tmp_path: Path, media: dict[str, tuple[Path, list[bytes]]]
) -> None:
    _, packets = media["vp8"]
    session, port = await recording(tmp_path, "vp8")
    (track,) = session.tracks.values()
    sfu, sfu_rtcp, attacker = udp(), udp(), udp()
    try:
        for data in packets[:5]:
            sfu.sendto(data, ("127.0.0.1", port))
        latch = b"\x80\x00\x00\x00" + b"\x00" * 8  # Janus's latching packet from its local_rtcp_port
        sfu_rtcp.sendto(latch, ("127.0.0.1", port + 1))
        await asyncio.sleep(0.1)
        attacker.sendto(latch, ("127.0.0.1", port + 1))
        await asyncio.sleep(0.1)
        assert track.receiver.request_keyframe()
        sfu_rtcp.settimeout(2)
        pli = parse_rtcp(sfu_rtcp.recv(2048))
        assert isinstance(pli[0], PictureLossIndication)
        attacker.setblocking(False)
        with pytest.raises(BlockingIOError):
            attacker.recv(2048)
        assert track.receiver.rtcp_remote == sfu_rtcp.getsockname()
    finally:
        await finish(session)
        for s in (sfu, sfu_rtcp, attacker):
            s.close()


async def test_senders_outside_the_sfu_network_are_refused(
    tmp_path: Path, media: dict[str, tuple[Path, list[bytes]]]
) -> None:
    _, packets = media["opus"]
    session, port = await recording(tmp_path, "opus", sources=["10.255.255.1/32"])
    (track,) = session.tracks.values()
    sender = udp()
    try:
        for data in packets[:40]:
            sender.sendto(data, ("127.0.0.1", port))
        await asyncio.sleep(0.2)
        assert track.receiver.sender is None and track.pipeline.foreign_packets == 40
    finally:
        await finish(session)
        sender.close()
    (summary,) = session.finished.values()
    assert summary.frames == 0 and summary.packets_foreign == 40


def test_record_rtp_refuses_a_name_or_mid_that_leaves_its_folder(tmp_path: Path) -> None:
    sdp = tmp_path / "in.sdp"
    sdp.write_text(sdp_for([("opus", 50000, 111)]))
    cmd = [str(Path(os.sys.executable).with_name("callvault")), "record-rtp", "--sdp", str(sdp)]
    result = subprocess.run(
        [*cmd, "--out", str(tmp_path / "out"), "--name", "../../escape", "--duration", "1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "--name" in result.stderr
    sdp.write_text(sdp_for([("opus", 50000, 111)]) + "a=mid:../../x\n")
    result = subprocess.run(
        [*cmd, "--out", str(tmp_path / "out"), "--duration", "1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "a=mid" in result.stderr
    assert not (tmp_path.parent / "escape").exists() and not (tmp_path / "x").exists()
