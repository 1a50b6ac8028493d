"""pcapng blocks as CallVault writes them and the reader that takes any file apart without trusting a
length (draft-ietf-opsawg-pcapng sections 4.1 SHB, 4.2 IDB, 4.3 EPB; RFC 791/768/8200 headers)."""

from __future__ import annotations

import contextlib
import random
import struct

import pytest

from recorder.capture import pcapng
from recorder.capture.reader import MAX_BLOCK, CaptureError, complete_length, parse

T0 = 1_764_540_000_123_456_789  # 2025-11-30, nanoseconds


def capture_bytes(source: tuple[str, int], local: tuple[str, int], payloads: list[bytes]) -> bytes:
    encoder = pcapng.UdpEncoder(pcapng.IF_RTP, source, local)
    blocks = [
        pcapng.section_header(["a comment", "callvault-stream {}"], "CallVault test"),
        pcapng.interface_description(pcapng.LINKTYPE_RAW, "t-rtp", "RTP"),
        pcapng.interface_description(pcapng.LINKTYPE_RAW, "t-rtcp", "RTCP"),
        pcapng.interface_description(pcapng.LINKTYPE_USER0, "callvault-events", "events"),
        pcapng.event(T0, 'callvault pause-start {"by": "agent-7"}'),
    ]
    blocks += [encoder.block(T0 + i * 1000, p) for i, p in enumerate(payloads)]
    return b"".join(blocks)


PAYLOADS = [bytes([0x80, 96]) + bytes(range(n % 251)) for n in (10, 11, 12, 13, 200, 1199)]


@pytest.mark.parametrize(
    ("source", "local"),
    [
        (("10.1.2.3", 40000), ("10.9.8.7", 20000)),
        (("2001:db8::5", 40000), ("2001:db8::9", 20000)),
        (("::ffff:10.1.2.3", 40000), ("0.0.0.0", 20000)),  # a dual-stack socket: written as IPv4
    ],
)
def test_datagrams_come_back_with_their_addresses_times_and_bytes(
    source: tuple[str, int], local: tuple[str, int]
) -> None:
    capture = parse(capture_bytes(source, local, PAYLOADS))
    assert capture.comments == ["a comment", "callvault-stream {}"]
    assert [i.name for i in capture.interfaces] == ["t-rtp", "t-rtcp", "callvault-events"]
    assert [d.payload for d in capture.datagrams] == PAYLOADS
    assert [d.time_ns for d in capture.datagrams] == [T0 + i * 1000 for i in range(len(PAYLOADS))]
    host = source[0].removeprefix("::ffff:")
    assert {d.source for d in capture.datagrams} == {(host, 40000)}
    assert {d.destination[1] for d in capture.datagrams} == {20000}
    assert [(e.time_ns, e.comment) for e in capture.events] == [
        (T0, 'callvault pause-start {"by": "agent-7"}')
    ]


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_ipv4_header_checksums_verify() -> None:
    encoder = pcapng.UdpEncoder(0, ("192.168.77.200", 65000), ("172.16.0.1", 5004))
    for payload in PAYLOADS:
        block = encoder.block(T0, payload)
        header = block[28:48]
        assert header[0] == 0x45 and header[9] == 17
        assert _ones_complement_sum(header) == 0xFFFF  # RFC 791: the checksum makes the sum all ones
        assert struct.unpack("!H", header[2:4])[0] == len(payload) + 28


def test_ipv6_udp_checksums_verify() -> None:
    encoder = pcapng.UdpEncoder(0, ("2001:db8::5", 40000), ("2001:db8::9", 20000))
    for payload in PAYLOADS:
        packet = encoder.block(T0, payload)[28:]
        udp = packet[40 : 40 + 8 + len(payload)]
        pseudo = packet[8:40] + struct.pack("!IxxxB", len(udp), 17)
        assert _ones_complement_sum(pseudo + udp) == 0xFFFF  # RFC 8200 8.1


def test_blocks_are_32_bit_aligned_and_lengths_agree() -> None:
    data = capture_bytes(("10.0.0.1", 1), ("10.0.0.2", 2), PAYLOADS)
    assert len(data) % 4 == 0 and complete_length(data) == len(data)


def test_a_cut_file_is_whole_up_to_its_last_complete_block() -> None:
    data = capture_bytes(("10.0.0.1", 1), ("10.0.0.2", 2), PAYLOADS)
    ends = {complete_length(data[:n]) for n in range(len(data) + 1)}
    for cut in range(1, len(data)):
        keep = complete_length(data[:cut])
        assert keep <= cut and keep in ends
        if keep:
            parse(data[:keep])  # whole blocks: a valid capture
        if keep != cut:
            with pytest.raises(CaptureError):
                parse(data[:cut])


def _with_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


HEADER = len(pcapng.section_header(["a comment", "callvault-stream {}"], "CallVault test"))
IDB0 = HEADER  # offset of the first Interface Description


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: b"GIF89a" + d[6:], "not a pcapng file"),
        (lambda d: b"", "not a pcapng file"),
        (lambda d: d[:8] + b"\x01\x02\x03\x04" + d[12:], "byte-order magic"),
        (lambda d: _with_u32(d, IDB0 + 4, 0xFFFFFFF0), f"more than {MAX_BLOCK}"),
        (lambda d: _with_u32(d, IDB0 + 4, 7), "impossible length"),
        (lambda d: _with_u32(d, IDB0 + 4, 8), "impossible length"),
        (lambda d: _with_u32(d, IDB0 + 4, 64), "differ"),
        (lambda d: d[:-3], "truncated"),
        (lambda d: d + b"\x06\0\0\0\xff\xff\0\0", "truncated"),
    ],
)
def test_hostile_files_are_refused_with_where_and_what(mutate: object, message: str) -> None:
    data = capture_bytes(("10.0.0.1", 1), ("10.0.0.2", 2), PAYLOADS)
    with pytest.raises(CaptureError, match=message):
        parse(mutate(data))  # type: ignore[operator]


def test_an_option_or_packet_that_runs_past_its_block_is_refused() -> None:
    idb = bytearray(pcapng.interface_description(pcapng.LINKTYPE_RAW, "x", "y"))
    struct.pack_into("<H", idb, 16 + 2, 400)  # if_name claims 400 bytes
    shb = pcapng.section_header([], "t")
    with pytest.raises(CaptureError, match="runs past the block"):
        parse(shb + bytes(idb))
    epb = bytearray(pcapng.enhanced_packet(0, T0, b"\x45" + b"\0" * 27))
    struct.pack_into("<I", epb, 20, 10_000)  # captured length larger than the block
    good_idb = pcapng.interface_description(pcapng.LINKTYPE_RAW, "x", "y")
    with pytest.raises(CaptureError, match="do not fit"):
        parse(shb + good_idb + bytes(epb))
    with pytest.raises(CaptureError, match="interface 0, which is not described"):
        parse(shb + pcapng.enhanced_packet(0, T0, b"\0"))


def test_random_damage_gives_capture_errors_only() -> None:
    data = capture_bytes(("10.0.0.1", 1), ("10.0.0.2", 2), PAYLOADS)
    rng = random.Random(18)
    for _ in range(2000):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        with contextlib.suppress(CaptureError):
            parse(bytes(damaged))
        complete_length(bytes(damaged))


def test_big_endian_sections_are_read() -> None:
    """What a big-endian machine's Wireshark writes: every field in big-endian order."""
    body = struct.pack(">IHHq", pcapng.BYTE_ORDER_MAGIC, 1, 0, -1)
    shb = struct.pack(">II", pcapng.SHB_TYPE, 12 + len(body)) + body + struct.pack(">I", 12 + len(body))
    idb_body = struct.pack(">HHI", pcapng.LINKTYPE_RAW, 0, 0)
    idb = struct.pack(">II", 1, 20) + idb_body + struct.pack(">I", 20)
    ip = pcapng.UdpEncoder(0, ("10.0.0.1", 7), ("10.0.0.2", 9)).block(0, b"hello")[28:-4]
    epb_body = struct.pack(">IIIII", 0, 0, 5_000_000, 33, 33) + ip
    epb = struct.pack(">II", 6, 12 + len(epb_body)) + epb_body + struct.pack(">I", 12 + len(epb_body))
    capture = parse(shb + idb + epb)
    (datagram,) = capture.datagrams
    assert datagram.payload == b"hello" and datagram.time_ns == 5_000_000_000  # microseconds by default
    assert datagram.source == ("10.0.0.1", 7)
