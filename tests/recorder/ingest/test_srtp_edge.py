"""SRTP at the UDP edge (issue 11, the forward leg): packets under the track's key are decrypted before
anything reads them and recorded bit for bit as without SRTP; packets under another key, tampered with,
sent as plain RTP, or replayed are dropped and counted (`packets_unauthenticated`, `packets_replayed`),
never crash the track and never lock it to their sender; the key never appears in a log line, a summary
or an exception. The packets are real ffmpeg-encoded VP8 sent through real sockets on 127.0.0.1, and
protected with libsrtp exactly as Janus's forwarder does (RTP only, any outbound SSRC)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import pickle
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from janus_fixture import free_udp_port_pair
from media import encode_reference, ffprobe_errors, read_packets, rtp_sender, sdp_for

from recorder.assembly.pipeline import StreamPipeline
from recorder.config import RecorderSettings
from recorder.crypto.srtp import SrtpKey, SrtpReceiver, SrtpSender, SrtpSuite
from recorder.ingest.track import TrackReceiver
from recorder.models import Codec, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.rtp.packet import RtpPacket
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

JANUS = ("127.0.0.1", 40000)


class FakeSocket:
    port = 5000

    def __init__(self) -> None:
        self.peer: tuple[str, int] | None = None

    def sendto(self, data: bytes, addr: tuple[str, int]) -> bool:
        return True

    def connect(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def close(self) -> None:
        pass


def receiver(key: SrtpKey) -> TrackReceiver:
    spec = StreamSpec(name="v", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=5000, rtcp_port=5001)
    r = TrackReceiver(spec, StreamPipeline(spec, "webm"), srtp=SrtpReceiver(key))
    r.rtp_socket = FakeSocket()
    return r


def rtp(seq: int, payload: bytes = b"\x10\x00\x9d\x01\x2a") -> bytes:
    return RtpPacket(96, seq, seq * 3000, 0x1234ABCD, payload).serialize()


def summary(r: TrackReceiver) -> TrackSummary:
    return r.pipeline.counters()


@pytest.mark.parametrize("suite", list(SrtpSuite))
def test_packets_under_the_key_are_decrypted_and_lock_the_track(suite: SrtpSuite) -> None:
    key = SrtpKey.generate(suite)
    r, janus = receiver(key), SrtpSender(key)
    for seq in range(100, 120):
        r.datagram_received(janus.protect(rtp(seq)), JANUS)
    s = summary(r)
    assert r.sender == JANUS and r.media_ssrc == 0x1234ABCD
    assert s.packets_received == 20 and s.packets_unauthenticated == 0 and s.packets_malformed == 0


def test_another_key_tampering_and_plain_rtp_are_dropped_and_counted() -> None:
    key = SrtpKey.generate()
    r, janus, stranger = receiver(key), SrtpSender(key), SrtpSender(SrtpKey.generate())
    for seq in range(10):
        r.datagram_received(stranger.protect(rtp(seq)), JANUS)  # the right SSRC and numbers, another key
        r.datagram_received(rtp(seq), JANUS)  # plain RTP to an SRTP track
    assert r.sender is None, "an unauthenticated packet locked the track"
    tampered = bytearray(janus.protect(rtp(10)))
    tampered[20] ^= 0x01  # one payload bit flipped on the way
    r.datagram_received(bytes(tampered), JANUS)
    r.datagram_received(os.urandom(3000), JANUS)  # longer than any forwarded packet
    r.datagram_received(b"\x80", JANUS)
    for seq in range(11, 16):
        r.datagram_received(janus.protect(rtp(seq)), JANUS)
    s = summary(r)
    assert s.packets_unauthenticated == 23
    assert s.packets_received == 5 and r.sender == JANUS  # the real sender is still recorded


def test_replayed_packets_are_dropped_and_counted() -> None:
    key = SrtpKey.generate()
    r, janus = receiver(key), SrtpSender(key)
    sent = [janus.protect(rtp(seq)) for seq in range(2000)]
    for data in sent[:1500]:
        r.datagram_received(data, JANUS)
    for data in (sent[1499], sent[1400], sent[0]):  # the newest again, one in the window, one far behind
        r.datagram_received(data, JANUS)
    reordered = sent[1500:1600]
    reordered[10], reordered[11] = reordered[11], reordered[10]
    for data in reordered:
        r.datagram_received(data, JANUS)
    s = summary(r)
    assert s.packets_replayed == 3 and s.packets_unauthenticated == 0
    assert s.packets_received == 1600 and s.packets_duplicate == 0


def test_a_track_under_another_ssrc_and_a_new_sender_ssrc_keep_working() -> None:
    """Janus keeps the key when the publisher restarts (a new SSRC and sequence): still decrypted."""
    key = SrtpKey.generate()
    r, janus = receiver(key), SrtpSender(key)
    for seq in range(5):
        r.datagram_received(janus.protect(rtp(seq)), JANUS)
    other = RtpPacket(96, 40000, 0, 0x55555555, b"\x10\x00\x9d").serialize()
    r.pipeline.summary.packets_received = 0
    r._last_packet = 0.0  # the old SSRC has been silent long enough
    r.datagram_received(janus.protect(other), JANUS)
    assert r.media_ssrc == 0x55555555 and summary(r).packets_unauthenticated == 0


def test_the_key_never_shows_in_text_forms() -> None:
    key = SrtpKey.generate()
    secrets_ = (key.inline(), key.material.hex(), repr(key.material))
    receiver_ = SrtpReceiver(key)

    @dataclass
    class Holder:
        key: SrtpKey

    texts = [repr(key), str(key), f"{key!r} {key}", repr(receiver_), repr([key]), repr(asdict(Holder(key)))]
    assert not any(s in t for s in secrets_ for t in texts), texts
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(ValueError, match="30 bytes") as error:
        SrtpKey(SrtpSuite.AES_CM_128_HMAC_SHA1_80, key.material[:29])
    assert key.material[:29].hex() not in str(error.value)
    assert base64.b64decode(key.inline()) == key.material and len(key.material) == 30


# -- real sockets, real media -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vp8_packets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    """A VP8 reference file and the RTP packets ffmpeg sends for it (`-c copy`)."""
    folder = tmp_path_factory.mktemp("ref")
    reference = encode_reference("vp8", folder, 2.0)
    port = free_udp_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind(("127.0.0.1", port))
        sock.settimeout(2.0)
        sender = rtp_sender(reference, port, 96, realtime=False)
        packets: list[bytes] = []
        try:
            while True:
                packets.append(sock.recv(2048))
        except TimeoutError:
            pass
        finally:
            sender.wait(30)
    assert sender.returncode == 0 and len(packets) > 50
    return reference, packets


async def record(folder: Path, datagrams: list[bytes], key: SrtpKey | None) -> tuple[TrackSummary, Path]:
    """Send `datagrams` to a RecordingSession's track (decrypting under `key`) through a real socket."""
    port = free_udp_port_pair()
    (spec,) = parse_sdp(sdp_for([("vp8", port, 96)]))
    workers = MuxWorkers(1)
    session = RecordingSession(folder, RecorderSettings(segment_seconds=1.0), workers)
    await session.add_track(spec, key)
    (track,) = session.tracks.values()
    sfu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i, data in enumerate(datagrams):
            sfu.sendto(data, ("127.0.0.1", port))
            if i % 8 == 0:
                await asyncio.sleep(0.001)
        for _ in range(300):  # until every datagram was read (or dropped and counted)
            s = track.pipeline.counters()
            if s.packets_received + s.packets_unauthenticated + s.packets_replayed >= len(datagrams):
                break
            await asyncio.sleep(0.01)
    finally:
        await session.stop()
        workers.shutdown()
        sfu.close()
    (summary,) = session.finished.values()
    assert summary.file is not None
    return summary, folder / summary.file


async def test_srtp_recording_equals_the_plain_one_bit_for_bit(
    tmp_path: Path, vp8_packets: tuple[Path, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    reference, packets = vp8_packets
    key = SrtpKey.generate()
    janus = SrtpSender(key)
    protected = [janus.protect(p) for p in packets]
    forged = [SrtpSender(SrtpKey.generate()).protect(p) for p in packets[5:25]]
    mixed = protected[:5] + [x for pair in zip(forged, protected[5:25], strict=True) for x in pair]
    mixed += protected[25:] + protected[40:45]  # and five replays

    plain, plain_file = await record(tmp_path / "plain", packets, None)
    srtp, srtp_file = await record(tmp_path / "srtp", mixed, key)

    assert read_packets(srtp_file).data == read_packets(plain_file).data == read_packets(reference).data
    assert ffprobe_errors(srtp_file) == ""
    assert srtp.packets_unauthenticated == 20 and srtp.packets_replayed == 5
    assert srtp.packets_lost == 0 and srtp.frames_dropped == 0 and srtp.packets_received == len(packets)
    assert plain.packets_unauthenticated == plain.packets_replayed == 0
    written = await asyncio.to_thread(lambda: "\n".join(p.read_text() for p in tmp_path.rglob("*.json")))
    for secret in (key.inline(), key.material.hex()):
        assert secret not in caplog.text and secret not in written


def test_the_public_pylibsrtp_call_counts_alike() -> None:
    """The fallback (pylibsrtp's `Session.unprotect`, should its binding change) drops and counts the same."""
    key = SrtpKey.generate()
    fast, slow, janus = SrtpReceiver(key), SrtpReceiver(key), SrtpSender(key)
    slow._unprotect = None
    sent = [janus.protect(rtp(seq)) for seq in range(5)]
    forged = SrtpSender(SrtpKey.generate()).protect(rtp(9))
    for r in (fast, slow):
        assert [r.unprotect(d) for d in sent] == [rtp(seq) for seq in range(5)]
        assert r.unprotect(sent[2]) is None and r.unprotect(forged) is None
        assert r.unprotect(os.urandom(5000)) is None
        assert (r.replayed, r.unauthenticated) == (1, 2)


def test_a_long_pause_keeps_the_decryption_in_step() -> None:
    """Nothing of a pause is recorded, but libsrtp still sees its packets go by: after 70,000 paused packets
    (the 16-bit sequence number wrapped; the rollover counter moved on) recording resumes without a loss of
    authentication."""
    key = SrtpKey.generate()
    r, janus = receiver(key), SrtpSender(key)
    seq = 0
    for _ in range(10):
        r.datagram_received(janus.protect(rtp(seq & 0xFFFF)), JANUS)
        seq += 1
    r.pipeline.paused = True
    for _ in range(70_000):
        r.datagram_received(janus.protect(rtp(seq & 0xFFFF)), JANUS)
        seq += 1
    r.pipeline.paused = False
    for _ in range(10):
        r.datagram_received(janus.protect(rtp(seq & 0xFFFF)), JANUS)
        seq += 1
    s = summary(r)
    assert s.packets_paused == 70_000 and s.packets_unauthenticated == 0 and s.packets_replayed == 0
    assert s.packets_received == 20
