"""RTCP: SR/RR/SDES/BYE (RFC 3550 §6.4-6.6), PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1)."""

from __future__ import annotations

import contextlib
import random

import pytest

from recorder.errors import MalformedPacketError
from recorder.rtp.rtcp import (
    FullIntraRequest,
    Goodbye,
    PictureLossIndication,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_fir,
    build_pli,
    is_rtcp,
    ntp_to_unix,
    parse_rtcp,
    unix_to_ntp,
)


def test_pli_bytes_rfc4585() -> None:
    # V=2, FMT=1, PT=206, length=2 words, sender SSRC, media SSRC.
    assert build_pli(0x01020304, 0x0A0B0C0D) == bytes.fromhex("81ce0002 01020304 0a0b0c0d".replace(" ", ""))


def test_fir_bytes_rfc5104() -> None:
    expected = bytes.fromhex("84ce0004 00000001 00000000 00000002 07000000".replace(" ", ""))
    assert build_fir(1, 2, 7) == expected
    assert parse_rtcp(expected) == [FullIntraRequest(1, ((2, 7),))]


def test_compound_sr_sdes_round_trip() -> None:
    block = ReportBlock(9, 12, -3, 70000, 5, 6, 7)
    packets = [
        SenderReport(1, unix_to_ntp(1_700_000_000.5), 123, 10, 1000, (block,)),
        SourceDescription((SdesChunk(1, ((1, b"callvault@host"),)),)),
    ]
    data = b"".join(p.serialize() for p in packets)
    assert is_rtcp(data)
    assert parse_rtcp(data) == packets


def test_rr_bye_pli_and_unknown_types() -> None:
    packets = [
        ReceiverReport(5, (ReportBlock(1, 0, 0, 1, 0, 0, 0), ReportBlock(2, 255, 100, 2, 3, 4, 5))),
        Goodbye((5, 6), b"left the call"),
        PictureLossIndication(1, 2),
        UnknownRtcp(205, 15, b"\x00" * 8),  # transport-wide CC feedback: kept, not understood
    ]
    assert parse_rtcp(b"".join(p.serialize() for p in packets)) == packets


def test_ntp_conversion() -> None:
    assert ntp_to_unix(unix_to_ntp(1_700_000_000.25)) == pytest.approx(1_700_000_000.25, abs=1e-6)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc8", "shorter than its 4-byte header"),
        (b"\x40\xc9\x00\x01\x00\x00\x00\x01", "version 1"),
        (b"\x80\xc9\x00\x05\x00\x00\x00\x01", "runs past the datagram"),
        (b"\x81\xc9\x00\x01\x00\x00\x00\x01", "report blocks"),
        (b"\x81\xc8\x00\x01\x00\x00\x00\x01", "truncated"),
        (b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09\x00\x00", "SDES"),
    ],
)
def test_malformed_rtcp(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        parse_rtcp(data)


def test_random_rtcp_never_raises_anything_else() -> None:
    rng = random.Random(3)
    for _ in range(20_000):
        data = bytes([0x80 | rng.getrandbits(5), rng.choice([200, 201, 202, 203, 205, 206])]) + bytes(
            rng.getrandbits(8) for _ in range(rng.randrange(0, 40))
        )
        with contextlib.suppress(MalformedPacketError):
            parse_rtcp(data)
