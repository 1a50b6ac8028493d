"""The UDP edge: whatever arrives, malformed packets are counted and never crash the receiver, packets
of other payload types or of a second sender are kept apart, and a PLI goes back where RTCP came from."""

from __future__ import annotations

import random

from recorder.assembly.pipeline import StreamPipeline
from recorder.ingest.track import TrackReceiver
from recorder.models import Codec, StreamSpec
from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtcp import PictureLossIndication, SenderReport, parse_rtcp, unix_to_ntp


class FakeSocket:
    """Stands in for the track's UDP socket: records what would be sent and whom it connects to."""

    port = 5001

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.peer: tuple[str, int] | None = None

    def sendto(self, data: bytes, addr: tuple[str, int]) -> bool:
        self.sent.append((data, addr))
        return True

    def connect(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def close(self) -> None:
        pass


def receiver(codec: Codec = Codec.VP8) -> TrackReceiver:
    spec = StreamSpec(name="v", codec=codec, payload_type=96, clock_rate=90000, port=5000, rtcp_port=5001)
    return TrackReceiver(spec, StreamPipeline(spec, "webm"))


def test_garbage_truncated_and_bad_extensions_are_counted() -> None:
    r = receiver()
    rng = random.Random(1)
    bad = [
        b"",
        b"\x80",
        b"\x80\x60\x00\x01",  # truncated header
        b"\x90\x60\x00\x01" + b"\x00" * 8 + b"\xbe\xde\x00\x09",  # extension length past the end
        b"\x40" + b"\x00" * 20,  # version 1
    ] + [bytes([0x80 | rng.getrandbits(6)]) + rng.randbytes(rng.randrange(0, 10)) for _ in range(500)]
    for data in bad:
        r.datagram_received(data, ("127.0.0.1", 9))
    assert r.pipeline.malformed >= 5
    assert r.pipeline.malformed + r.pipeline.foreign_packets + r.pipeline.reorder.stats.received == len(bad)


def test_other_payload_types_and_a_second_sender_are_foreign() -> None:
    r = receiver()
    r.datagram_received(RtpPacket(96, 1, 0, 111, b"\x10\x00").serialize(), ("127.0.0.1", 9))
    r.datagram_received(RtpPacket(97, 2, 0, 111, b"\x10\x00").serialize(), ("127.0.0.1", 9))  # RTX, say
    r.datagram_received(RtpPacket(96, 3, 0, 222, b"\x10\x00").serialize(), ("127.0.0.1", 9))  # intruder
    assert r.pipeline.foreign_packets == 2 and r.media_ssrc == 111


def test_pli_goes_to_the_rtcp_source_and_sender_reports_are_kept() -> None:
    r = receiver()
    transport = FakeSocket()
    r.rtcp_socket = transport
    r.datagram_received(RtpPacket(96, 1, 1000, 111, b"\x10\x00\x9d").serialize(), ("127.0.0.1", 9))
    assert not r.request_keyframe()  # no RTCP path known yet
    sr = SenderReport(111, unix_to_ntp(1_700_000_000.0), 1000, 1, 100).serialize()
    r.rtcp_received(sr, ("127.0.0.1", 39868))  # Janus's local_rtcp_port
    assert r.request_keyframe()
    data, addr = transport.sent[0]
    assert addr == ("127.0.0.1", 39868)
    assert parse_rtcp(data) == [PictureLossIndication(r.our_ssrc, 111)]
    r.rtcp_received(b"\x80\x00" + b"\x00" * 10, ("127.0.0.1", 39868))  # Janus's latching packet: ignored
    assert r.pipeline.malformed == 0
