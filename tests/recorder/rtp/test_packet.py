"""RTP packets: RFC 3550 §5.1 header, CSRC, padding; RFC 8285 header extensions; malformed input."""

from __future__ import annotations

import contextlib
import random

import pytest
from aiortc.rtp import RtpPacket as AiortcPacket

from recorder.errors import MalformedPacketError
from recorder.rtp.packet import HeaderExtension, RtpPacket, build_extensions


def test_round_trip_with_csrc_extensions_and_padding() -> None:
    profile, block = build_extensions([HeaderExtension(1, b"\x30"), HeaderExtension(3, b"\x01\x02\x03")])
    p = RtpPacket(
        payload_type=96,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0x12345678,
        payload=b"media",
        marker=True,
        csrc=(1, 2),
        extension_profile=profile,
        extension_data=block,
        padding_size=4,
    )
    data = p.serialize()
    q = RtpPacket.parse(data)
    assert q == p and q.serialize() == data
    assert q.extensions() == (HeaderExtension(1, b"\x30"), HeaderExtension(3, b"\x01\x02\x03"))


def test_two_byte_extensions_rfc8285_section_4_3() -> None:
    exts = [HeaderExtension(20, b"x" * 20), HeaderExtension(2, b"")]
    profile, block = build_extensions(exts)
    assert profile == 0x1000
    p = RtpPacket.parse(
        RtpPacket(96, 1, 2, 3, b"p", extension_profile=profile, extension_data=block).serialize()
    )
    assert p.extensions() == tuple(exts)


def test_matches_aiortc_byte_for_byte() -> None:
    ours = RtpPacket(111, 4321, 987654, 0xDEADBEEF, b"\x01\x02", marker=True)
    theirs = AiortcPacket(payload_type=111, marker=1, sequence_number=4321, timestamp=987654, ssrc=0xDEADBEEF)
    theirs.payload = b"\x01\x02"
    assert ours.serialize() == theirs.serialize()
    parsed = AiortcPacket.parse(ours.serialize())
    assert (parsed.sequence_number, parsed.timestamp, parsed.marker) == (4321, 987654, 1)


VALID = RtpPacket(96, 1, 2, 3, b"payload", csrc=(7,)).serialize()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x60\x00", "shorter than the 12-byte header"),
        (b"\x40" + VALID[1:], "version 1"),
        (b"\x83" + VALID[1:16], "truncated CSRC list"),
        (b"\x90" + VALID[1:12] + b"\xbe\xde", "truncated extension header"),
        (b"\x90" + VALID[1:12] + b"\xbe\xde\x00\x05" + b"\x00" * 4, "runs past the packet"),
        (b"\x90" + VALID[1:12] + b"\xbe\xde\x00\x01" + b"\x1f\x00\x00\x00", "past the block"),
        (b"\x90" + VALID[1:12] + b"\x10\x00\x00\x01" + b"\x05\x09\x00\x00", "past the block"),
        (b"\xa0" + VALID[1:12] + b"ab\x00", "invalid padding size 0"),
        (b"\xa0" + VALID[1:12] + b"ab\x09", "invalid padding size 9"),
    ],
)
def test_malformed_packets_are_rejected_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        RtpPacket.parse(data)


def test_random_bytes_never_raise_anything_else() -> None:
    rng = random.Random(7)
    for _ in range(20_000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 40)))
        if data:
            data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
        with contextlib.suppress(MalformedPacketError):
            RtpPacket.parse(data).extensions()
