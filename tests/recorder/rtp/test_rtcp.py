"""RTCP: SR/RR/SDES/BYE (RFC 3550 §6.4-6.6), compound packets (§6.1), reduced-size packets (RFC 5506),
PLI (RFC 4585 §6.3.1), FIR (RFC 5104 §4.3.1), RTP/RTCP demultiplexing (RFC 5761 §4), NTP time (§4)."""

from __future__ import annotations

import random

import pytest

from recorder.errors import MalformedPacketError
from recorder.rtp.rtcp import (
    SDES_CNAME,
    SDES_TOOL,
    FullIntraRequest,
    Goodbye,
    PictureLossIndication,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
    build_fir,
    build_pli,
    build_receiver_report,
    is_rtcp,
    ntp_to_unix,
    parse_rtcp,
    unix_to_ntp,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


BLOCK = ReportBlock(0x0A0B0C0D, 0x40, -3, 70000, 5, 0xC2A58000, 0x00010000)
BLOCK_WIRE = "0a0b0c0d 40fffffd 00011170 00000005 c2a58000 00010000"
SDES_WIRE = "81ca0004 11223344 0107 637640686f7374 000000"  # CNAME "cv@host", end octet, 2 pad octets

# Each packet type checked against bytes computed by hand from the RFC figures.
LAYOUTS = [
    pytest.param(
        SenderReport(0x11223344, 0xE8F1C2A5_80000000, 0x12345, 10, 1000, (BLOCK,)),
        "81c8000c 11223344 e8f1c2a5 80000000 00012345 0000000a 000003e8" + BLOCK_WIRE,
        id="rfc3550-6.4.1-sr",
    ),
    pytest.param(
        SenderReport(1, 2, 3, 4, 5),
        "80c80006 00000001 00000000 00000002 00000003 00000004 00000005",
        id="sr-0",
    ),
    pytest.param(
        ReceiverReport(0x11223344, (BLOCK,)), "81c90007 11223344" + BLOCK_WIRE, id="rfc3550-6.4.2-rr"
    ),
    pytest.param(ReceiverReport(7), "80c90001 00000007", id="rfc3550-6.4.2-empty-rr"),
    pytest.param(
        SourceDescription((SdesChunk(0x11223344, ((SDES_CNAME, b"cv@host"),)),)),
        SDES_WIRE,
        id="rfc3550-6.5-sdes",
    ),
    pytest.param(
        SourceDescription((SdesChunk(1, ((SDES_CNAME, b"ab"), (SDES_TOOL, b"cv"))), SdesChunk(2))),
        "82ca0006 00000001 01026162 06026376 00000000 00000002 00000000",
        id="rfc3550-6.5-two-chunks-end-octets-fill-a-word",
    ),
    pytest.param(Goodbye((0x11223344,), b"bye"), "81cb0002 11223344 03627965", id="rfc3550-6.6-bye-reason"),
    pytest.param(
        Goodbye((1, 2), b"left"), "82cb0004 00000001 00000002 046c6566 74000000", id="rfc3550-6.6-bye-pad"
    ),
    pytest.param(Goodbye(()), "80cb0000", id="rfc3550-6.6-bye-nobody"),
    pytest.param(
        PictureLossIndication(0x01020304, 0x0A0B0C0D), "81ce0002 01020304 0a0b0c0d", id="rfc4585-6.3.1-pli"
    ),
    pytest.param(
        FullIntraRequest(1, ((2, 7), (3, 255))),
        "84ce0006 00000001 00000000 00000002 07000000 00000003 ff000000",
        id="rfc5104-4.3.1-fir",
    ),
    pytest.param(
        UnknownRtcp(205, 1, hexbytes("00000001 00000002 00640000")),
        "81cd0003 00000001 00000002 00640000",
        id="rfc4585-nack",
    ),
]


@pytest.mark.parametrize(("packet", "wire"), LAYOUTS)
def test_layout_and_round_trip(packet: RtcpPacket, wire: str) -> None:
    data = hexbytes(wire)
    assert packet.serialize() == data
    assert parse_rtcp(data) == [packet]
    assert type(packet).parse(data) == packet
    assert is_rtcp(data)


def test_builders_rfc4585_rfc5104() -> None:
    assert build_pli(0x01020304, 0x0A0B0C0D) == hexbytes("81ce0002 01020304 0a0b0c0d")
    assert build_fir(1, 2, 7) == hexbytes("84ce0004 00000001 00000000 00000002 07000000")
    assert build_fir(1, 2, 256 + 9)[-4] == 9  # the command sequence number is 8 bits (RFC 5104 §4.3.1.1)


def test_build_receiver_report_is_a_full_compound_rfc3550_section_6_1() -> None:
    data = build_receiver_report(0x11223344, [BLOCK], cname=b"cv@host")
    assert data == hexbytes("81c90007 11223344" + BLOCK_WIRE + SDES_WIRE)
    rr, sdes = parse_rtcp(data)
    assert rr == ReceiverReport(0x11223344, (BLOCK,))
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == b"cv@host"
    assert build_receiver_report(5) == hexbytes("80c90001 00000005")


def test_compound_sr_sdes_bye_with_unknown_packets_kept_rfc3550_section_6_1() -> None:
    packets: list[RtcpPacket] = [
        SenderReport(1, unix_to_ntp(1_700_000_000.5), 123, 10, 1000, (BLOCK,)),
        SourceDescription((SdesChunk(1, ((SDES_CNAME, b"callvault@host"),)),)),
        UnknownRtcp(206, 15, b"\x00\x00\x00\x01\x00\x00\x00\x00REMB\x01\x0a\x00\x00\x00\x00\x00\x02"),
        UnknownRtcp(207, 0, b"\x00\x00\x00\x01\x04\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x00"),  # XR
        UnknownRtcp(204, 3, b"\x00\x00\x00\x01name"),  # APP
        Goodbye((1,), b"left the call"),
    ]
    data = b"".join(p.serialize() for p in packets)
    assert parse_rtcp(data) == packets
    assert b"".join(p.serialize() for p in parse_rtcp(data)) == data


@pytest.mark.parametrize(
    "packet",
    [PictureLossIndication(1, 2), FullIntraRequest(1, ((2, 3),)), UnknownRtcp(205, 15, b"\x00" * 12)],
)
def test_reduced_size_rtcp_needs_no_report_first_rfc5506_section_3(packet: RtcpPacket) -> None:
    assert parse_rtcp(packet.serialize()) == [packet]


def test_padding_on_the_last_packet_rfc3550_section_6_4_1() -> None:
    rr = ReceiverReport(5).serialize()
    pli = PictureLossIndication(1, 2).serialize()
    padded = bytes([pli[0] | 0x20, pli[1], 0, 3]) + pli[4:] + b"\x00\x00\x00\x04"
    assert parse_rtcp(rr + padded) == [ReceiverReport(5), PictureLossIndication(1, 2)]


def test_parse_of_one_type_refuses_another() -> None:
    with pytest.raises(MalformedPacketError, match="expected one RTCP SenderReport, found ReceiverReport"):
        SenderReport.parse(ReceiverReport(1).serialize())
    with pytest.raises(MalformedPacketError, match="found ReceiverReport, PictureLossIndication"):
        ReceiverReport.parse(ReceiverReport(1).serialize() + build_pli(1, 2))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (hexbytes("80c8"), True),  # SR
        (hexbytes("81ce"), True),  # PSFB
        (hexbytes("80cf"), True),  # XR (aiortc's check stops at 208)
        (hexbytes("80df"), True),  # 223, the top of the RTCP range
        (hexbytes("8060"), False),  # RTP PT 96
        (hexbytes("80e0"), False),  # RTP PT 96 with the marker bit: 224
        (hexbytes("80bf"), False),  # RTP PT 63 with the marker bit: 191
        (hexbytes("80"), False),
    ],
)
def test_is_rtcp_rfc5761_section_4(data: bytes, expected: bool) -> None:
    assert is_rtcp(data) is expected


@pytest.mark.parametrize(
    ("unix", "ntp"),
    [
        (0.0, 2_208_988_800 << 32),  # RFC 3550 §4: NTP counts from 1900
        (0.5, (2_208_988_800 << 32) | 0x80000000),
        (1_700_000_000.25, ((1_700_000_000 + 2_208_988_800) << 32) | 0x40000000),
        (-2_208_988_800.0, 0),
    ],
)
def test_ntp_conversion_rfc3550_section_4(unix: float, ntp: int) -> None:
    assert unix_to_ntp(unix) == ntp
    assert ntp_to_unix(ntp) == unix


def test_ntp_round_trip_keeps_microseconds() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        t = rng.uniform(1e9, 2e9)
        assert ntp_to_unix(unix_to_ntp(t)) == pytest.approx(t, abs=1e-6)


def test_packets_lost_is_clamped_to_signed_24_bits_rfc3550_section_6_4_1() -> None:
    assert ReportBlock.parse(ReportBlock(1, 0, -(2**30), 0, 0, 0, 0).serialize()).packets_lost == -0x800000
    assert ReportBlock.parse(ReportBlock(1, 0, 2**30, 0, 0, 0, 0).serialize()).packets_lost == 0x7FFFFF


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param("80c8", "2 bytes is shorter than its 4-byte header", id="short"),
        pytest.param("40c90001 00000001", "version 1, expected 2", id="version"),
        pytest.param("80c90001 00000001 80c9", "2 trailing bytes", id="trailing"),
        pytest.param("80c90005 00000001", "201 of 5 words runs past the 8-byte datagram", id="length"),
        pytest.param("80c90001 00000001 81ce0003 00000001 00000002", "206 of 3 words", id="second-length"),
        pytest.param("81c90001 00000001", "RR announces 1 report blocks", id="rr-blocks"),
        pytest.param("80c90000", "RR is truncated before its sender SSRC", id="rr-ssrc"),
        pytest.param("80c80001 00000001", "shorter than the 24-byte sender info", id="sr-info"),
        pytest.param(
            "81c80006 00000001 00000000 00000002 00000003 00000004 00000005", "SR announces 1", id="sr-blocks"
        ),
        pytest.param("81ca0002 00000001 01090000", "SDES item 1 runs past", id="sdes-item"),
        pytest.param("81ca0002 00000001 01026162", "has no end-of-items octet", id="sdes-end"),
        pytest.param("82ca0002 00000001 00000000", "chunk 1 is missing", id="sdes-chunks"),
        pytest.param("82cb0001 00000001", "BYE announces 2 sources", id="bye-sources"),
        pytest.param("81cb0002 00000001 05616263", "BYE reason of 5 bytes", id="bye-reason"),
        pytest.param("81ce0001 00000001", "PLI body of 4 bytes", id="pli"),
        pytest.param("84ce0003 00000001 00000000 00000002", "FIR body of 12 bytes", id="fir-entry"),
        pytest.param("a0c90001 00000000", "invalid padding size 0", id="padding-0"),
        pytest.param("a0c90001 00000009", "invalid padding size 9", id="padding-over"),
        pytest.param("a0c90000", "invalid padding size 0", id="padding-empty-body"),
    ],
)
def test_malformed_rtcp(data: str, message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        parse_rtcp(hexbytes(data))


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (ReceiverReport(1, (BLOCK,) * 32), "count/FMT 32"),
        (Goodbye((1,), b"x" * 256), "reason of 256 bytes"),
        (FullIntraRequest(1, ((2, 256),)), "sequence number 256"),
        (SourceDescription((SdesChunk(1, ((SDES_CNAME, b"x" * 256),)),)), "item 1 of 256 bytes"),
        (UnknownRtcp(204, 0, b"abc"), "3 bytes is not a whole number"),
    ],
)
def test_serialize_refuses_what_does_not_fit(packet: RtcpPacket, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        packet.serialize()


def test_random_rtcp_parses_or_raises_malformed_only() -> None:
    rng = random.Random(3)
    accepted = 0
    for _ in range(20_000):
        body = rng.randbytes(4 * rng.randrange(0, 10) + rng.choice([0, 0, 0, 1, 2]))
        header = bytes([0x80 | rng.getrandbits(6), rng.choice([200, 201, 202, 203, 204, 205, 206, 207])])
        data = header + (len(body) // 4 + rng.choice([-1, 0, 0, 0, 1])).to_bytes(2, "big", signed=True) + body
        try:
            parse_rtcp(data)
        except MalformedPacketError:
            continue
        accepted += 1
    assert accepted > 1000
