"""RTP packets: RFC 3550 §5.1 fixed header, CSRC list and padding, §5.3.1 extension block; RFC 8285
§4.2 one-byte and §4.3 two-byte header extensions; interoperability with aiortc; malformed input."""

from __future__ import annotations

import random

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap
from aiortc.rtp import RtpPacket as AiortcPacket

from recorder.errors import MalformedPacketError
from recorder.rtp.packet import HeaderExtension, RtpPacket, build_extensions


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def with_extensions(exts: list[HeaderExtension], **fields: object) -> RtpPacket:
    profile, block = build_extensions(exts)
    return RtpPacket(**fields, extension_profile=profile, extension_data=block)  # type: ignore[arg-type]


# -- RFC 3550 §5.1: layout checked against hand-computed bytes --------------------------------------


@pytest.mark.parametrize(
    ("packet", "wire"),
    [
        pytest.param(
            RtpPacket(96, 0x1234, 0xDEADBEEF, 0xCAFEBABE, b"pp", marker=True),
            "80e01234 deadbeef cafebabe 7070",
            id="rfc3550-5.1-fixed-header-marker",
        ),
        pytest.param(
            RtpPacket(0, 1, 2, 3, b"ab", csrc=(4, 5), padding_size=3),
            "a2000001 00000002 00000003 00000004 00000005 6162 000003",
            id="rfc3550-5.1-csrc-and-padding",
        ),
        pytest.param(
            with_extensions(
                [HeaderExtension(1, b"\x30"), HeaderExtension(2, b"\xaa\xbb\xcc")],
                payload_type=96,
                sequence_number=0x1234,
                timestamp=0xDEADBEEF,
                ssrc=0xCAFEBABE,
                payload=b"pp",
                marker=True,
            ),
            "90e01234 deadbeef cafebabe bede0002 1030 22aabbcc 0000 7070",
            id="rfc8285-4.2-one-byte",
        ),
        pytest.param(
            with_extensions([HeaderExtension(20, b"\x01\x02")], payload_type=111, sequence_number=7),
            "906f0007 00000000 00000000 10000001 14020102",
            id="rfc8285-4.3-two-byte",
        ),
        pytest.param(
            RtpPacket(8, 9, 10, 11, extension_profile=0xABCD, extension_data=b""),
            "90080009 0000000a 0000000b abcd0000",
            id="rfc3550-5.3.1-empty-extension-of-another-profile",
        ),
    ],
)
def test_wire_layout(packet: RtpPacket, wire: str) -> None:
    data = hexbytes(wire)
    assert packet.serialize() == data
    assert RtpPacket.parse(data) == packet
    assert RtpPacket.parse(data).serialize() == data


@pytest.mark.parametrize(
    "packet",
    [
        RtpPacket(127, 65535, 0xFFFFFFFF, 0xFFFFFFFF, b"\xff" * 1200, marker=True),
        RtpPacket(96, 0, 0, 1, b""),  # RFC 3550 §5.1: an empty payload is allowed
        RtpPacket(96, 1, 2, 3, b"x", csrc=tuple(range(100, 115))),  # CC = 15, the maximum
        RtpPacket(96, 1, 2, 3, b"", padding_size=255),  # padding-only (bandwidth probe)
        RtpPacket(96, 1, 2, 3, b"x", padding_size=1),
        with_extensions([HeaderExtension(14, b"z" * 16)], payload_type=96, payload=b"y", padding_size=4),
        with_extensions([HeaderExtension(1, b""), HeaderExtension(255, b"v" * 255)], payload=b"y"),
    ],
)
def test_round_trip_rfc3550_section_5_1(packet: RtpPacket) -> None:
    data = packet.serialize()
    parsed = RtpPacket.parse(data)
    assert parsed == packet
    assert parsed.serialize() == data
    assert parsed.version == 2


def test_parse_keeps_non_zero_padding_octets_byte_for_byte_rfc3550_section_5_1() -> None:
    # Only the last padding octet has a meaning; the others are arbitrary but must come back unchanged.
    data = RtpPacket(96, 1, 2, 3, b"media").serialize()
    data = bytes([data[0] | 0x20]) + data[1:] + b"\x11\x22\x33\x04"
    parsed = RtpPacket.parse(data)
    assert (parsed.payload, parsed.padding_size) == (b"media", 4)
    assert parsed.serialize() == data
    assert parsed == RtpPacket(96, 1, 2, 3, b"media", padding_size=4)


# -- RFC 8285 extensions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "block", "expected"),
    [
        pytest.param(0xBEDE, "10300000", [(1, "30")], id="4.2-trailing-padding"),
        pytest.param(0xBEDE, "00 10 30 00 21 aabb 00", [(1, "30"), (2, "aabb")], id="4.2-padding-between"),
        pytest.param(0xBEDE, "1030 f0 ffffff 2111", [(1, "30")], id="4.2-id-15-stops-processing"),
        pytest.param(0xBEDE, "1030 05 2111 000000", [(1, "30")], id="4.2-id-0-with-length-stops"),
        pytest.param(0xBEDE, "", [], id="4.2-empty-block"),
        pytest.param(0x1000, "0100 0000", [(1, "")], id="4.3-zero-length-value"),
        pytest.param(0x1000, "00 0f01aa 00 1002bbcc 000000", [(15, "aa"), (16, "bbcc")], id="4.3-padding"),
        pytest.param(0x100F, "0501ff00", [(5, "ff")], id="4.3-appbits"),
        pytest.param(0xABCD, "0fffffff", [], id="other-profile-is-opaque"),
        pytest.param(0x1010, "0fffffff", [], id="outside-0x1000-0x100f-is-opaque"),
    ],
)
def test_extension_elements_rfc8285(profile: int, block: str, expected: list[tuple[int, str]]) -> None:
    data = hexbytes(block)
    packet = RtpPacket.parse(RtpPacket(96, extension_profile=profile, extension_data=data).serialize())
    assert packet.extensions() == tuple(HeaderExtension(i, hexbytes(v)) for i, v in expected)


def test_no_extension_block_gives_no_elements() -> None:
    assert RtpPacket.parse(RtpPacket(96, payload=b"x").serialize()).extensions() == ()


@pytest.mark.parametrize(
    ("exts", "appbits", "profile"),
    [
        ([HeaderExtension(1, b"a"), HeaderExtension(14, b"b" * 16)], 0, 0xBEDE),
        ([HeaderExtension(15, b"a")], 0, 0x1000),  # id above 14
        ([HeaderExtension(1, b"a" * 17)], 0, 0x1000),  # value above 16 bytes
        ([HeaderExtension(1, b"")], 0, 0x1000),  # empty value
        ([HeaderExtension(1, b"a")], 3, 0x1003),  # appbits need the two-byte form
    ],
)
def test_build_extensions_chooses_the_form_rfc8285_section_4_1_1(
    exts: list[HeaderExtension], appbits: int, profile: int
) -> None:
    got_profile, block = build_extensions(exts, appbits)
    assert got_profile == profile
    assert len(block) % 4 == 0
    packet = RtpPacket(96, extension_profile=got_profile, extension_data=block)
    assert RtpPacket.parse(packet.serialize()).extensions() == tuple(exts)


def test_build_extensions_empty_and_invalid() -> None:
    assert build_extensions([]) == (None, b"")
    with pytest.raises(ValueError, match="two-byte ids are 1"):
        build_extensions([HeaderExtension(256, b"a")])
    with pytest.raises(ValueError, match="at most 255 bytes"):
        build_extensions([HeaderExtension(20, b"a" * 256)])
    with pytest.raises(ValueError, match="appbits"):
        build_extensions([HeaderExtension(1, b"a")], appbits=16)


# -- aiortc interoperability -------------------------------------------------------------------------

URIS = {
    "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
    "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "audio_level": "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "transport_sequence_number": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
}


def aiortc_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=URIS[name]) for name, i in ids.items()
            ]
        )
    )
    return extensions_map


@pytest.mark.parametrize(
    ("ids", "profile"),
    [
        ({"mid": 1, "abs_send_time": 2, "audio_level": 3, "transport_sequence_number": 4}, 0xBEDE),
        ({"mid": 20, "abs_send_time": 2, "audio_level": 3, "transport_sequence_number": 4}, 0x1000),
    ],
)
def test_aiortc_packet_parsed_by_ours(ids: dict[str, int], profile: int) -> None:
    theirs = AiortcPacket(payload_type=96, marker=1, sequence_number=65535, timestamp=90000, ssrc=0x1234ABCD)
    theirs.csrc = [7, 8]
    theirs.payload = bytes(range(256)) * 4
    theirs.padding_size = 7  # aiortc pads with random octets
    theirs.extensions.mid = "0"
    theirs.extensions.abs_send_time = 0x123456
    theirs.extensions.audio_level = (True, 42)
    theirs.extensions.transport_sequence_number = 0xBEEF
    data = theirs.serialize(aiortc_map(ids))

    ours = RtpPacket.parse(data)
    assert ours.serialize() == data
    assert (ours.payload_type, ours.marker, ours.sequence_number, ours.timestamp, ours.ssrc) == (
        96,
        True,
        65535,
        90000,
        0x1234ABCD,
    )
    assert (ours.csrc, ours.payload, ours.padding_size) == ((7, 8), theirs.payload, 7)
    assert ours.extension_profile == profile
    assert dict((e.id, e.value) for e in ours.extensions()) == {
        ids["mid"]: b"0",
        ids["abs_send_time"]: b"\x12\x34\x56",
        ids["audio_level"]: bytes([0x80 | 42]),
        ids["transport_sequence_number"]: b"\xbe\xef",
    }


def test_our_packet_parsed_by_aiortc() -> None:
    ids = {"mid": 1, "abs_send_time": 3, "transport_sequence_number": 5}
    ours = with_extensions(
        [HeaderExtension(1, b"video"), HeaderExtension(3, b"\x00\x10\x00"), HeaderExtension(5, b"\x01\x02")],
        payload_type=100,
        sequence_number=42,
        timestamp=3_000_000_000,
        ssrc=0xFEEDF00D,
        payload=b"\x90\x80\x00vp8",
        marker=True,
        csrc=(9,),
        padding_size=2,
    )
    theirs = AiortcPacket.parse(ours.serialize(), aiortc_map(ids))
    assert (theirs.payload_type, theirs.marker, theirs.sequence_number, theirs.timestamp, theirs.ssrc) == (
        100,
        1,
        42,
        3_000_000_000,
        0xFEEDF00D,
    )
    assert (theirs.csrc, theirs.payload, theirs.padding_size) == ([9], b"\x90\x80\x00vp8", 2)
    assert theirs.extensions.mid == "video"
    assert theirs.extensions.abs_send_time == 0x1000
    assert theirs.extensions.transport_sequence_number == 0x0102


# -- malformed packets -------------------------------------------------------------------------------

HEADER = "80600001 00000002 00000003"  # V=2, PT=96, seq 1, ts 2, SSRC 3


def flags(bits: int, rest: str = "") -> bytes:
    """The fixed header above with `bits` ORed into its first octet, then `rest`."""
    data = hexbytes(HEADER + rest)
    return bytes([data[0] | bits]) + data[1:]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "0 bytes is shorter than the 12-byte header", id="empty"),
        pytest.param(
            hexbytes(HEADER)[:11], "11 bytes is shorter than the 12-byte header", id="5.1-short-header"
        ),
        pytest.param(b"\x40" + hexbytes(HEADER)[1:], "version 1, expected 2", id="5.1-version-1"),
        pytest.param(b"\xc0" + hexbytes(HEADER)[1:], "version 3, expected 2", id="5.1-version-3"),
        pytest.param(b"\x00" + hexbytes(HEADER)[1:], "version 0, expected 2", id="5.1-version-0"),
        pytest.param(flags(0x03, "00000004 00000005"), "truncated CSRC list", id="5.1-csrc"),
        pytest.param(flags(0x10, "bede"), "truncated extension header", id="5.3.1-ext-header"),
        pytest.param(flags(0x11, "00000004"), "truncated extension header", id="5.3.1-ext-header-after-csrc"),
        pytest.param(
            flags(0x10, "bede0002 10300000"), "2-word header extension running past", id="5.3.1-ext-len"
        ),
        pytest.param(flags(0x20, "616200"), "invalid padding size 0", id="5.1-padding-0"),
        pytest.param(
            flags(0x20, "616209"), "invalid padding size 9 for 3 bytes", id="5.1-padding-over-payload"
        ),
        pytest.param(flags(0x20), "invalid padding size 3 for 0 bytes", id="5.1-padding-without-room"),
        pytest.param(
            flags(0x30, "bede0001 10300000 6103"),
            "invalid padding size 3 for 2 bytes",
            id="5.1-padding-into-extension",
        ),
        pytest.param(
            flags(0x10, "bede0001 1f000000"), "extension 1 of 16 bytes runs past", id="8285-4.2-len"
        ),
        pytest.param(
            flags(0x10, "bede0001 00000031"), "extension 3 of 2 bytes runs past", id="8285-4.2-at-end"
        ),
        pytest.param(flags(0x10, "10000001 05090000"), "extension 5 of 9 bytes runs past", id="8285-4.3-len"),
        pytest.param(
            flags(0x10, "100f0001 00000005"), "two-byte header extension 5 has no length", id="8285-4.3"
        ),
    ],
)
def test_malformed_packets_are_rejected_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPacketError, match=message):
        RtpPacket.parse(data)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (RtpPacket(128), "payload type 128"),
        (RtpPacket(96, csrc=tuple(range(16))), "16 CSRCs"),
        (RtpPacket(96, padding_size=256), "padding size 256"),
        (RtpPacket(96, extension_profile=0xBEDE, extension_data=b"\x10\x30"), "extension data of 2 bytes"),
    ],
)
def test_serialize_refuses_fields_that_do_not_fit(packet: RtpPacket, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        packet.serialize()


def test_random_bytes_parse_or_raise_malformed_only() -> None:
    rng = random.Random(20240229)
    accepted = 0
    for _ in range(20_000):
        data = bytearray(rng.randbytes(rng.randrange(0, 48)))
        if data and rng.random() < 0.9:
            data[0] = 0x80 | (data[0] & 0x3F)  # mostly version 2, so the deeper checks run
        if len(data) > 12 and data[0] & 0x10 and rng.random() < 0.5:
            data[12:14] = rng.choice([b"\xbe\xde", b"\x10\x00"])  # RFC 8285 profiles
        try:
            packet = RtpPacket.parse(bytes(data))
        except MalformedPacketError:
            continue
        accepted += 1
        packet.extensions()  # never raises for a packet parse() accepted
        assert packet.serialize() == bytes(data)
    assert accepted > 1000


def test_mutated_real_packets_parse_or_raise_malformed_only() -> None:
    rng = random.Random(5)
    seeds = [
        with_extensions(
            [HeaderExtension(1, b"0"), HeaderExtension(3, b"\x01\x02\x03")],
            payload_type=96,
            payload=b"x" * 20,
        ).serialize(),
        with_extensions(
            [HeaderExtension(20, b"abc")], payload=b"y" * 9, csrc=(1,), padding_size=3
        ).serialize(),
    ]
    for _ in range(5_000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        data = data[: rng.randrange(len(data) + 1)]
        try:
            packet = RtpPacket.parse(bytes(data))
        except MalformedPacketError:
            continue
        packet.extensions()
        assert packet.serialize() == bytes(data)
