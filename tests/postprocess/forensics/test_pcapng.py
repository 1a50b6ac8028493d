"""The report's pcapng scan on hostile files: what comes before a torn or lying block is kept and the scan
says where it stopped; a file that is not pcapng gives nothing; non-UDP packets are skipped."""

from __future__ import annotations

import random
import struct

from postprocess.forensics.pcapng import scan


def block(kind: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    return struct.pack("<II", kind, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def epb(ns: int, packet: bytes) -> bytes:
    return block(6, struct.pack("<IIIII", 0, ns >> 32, ns & 0xFFFFFFFF, len(packet), len(packet)) + packet)


def udp(payload: bytes) -> bytes:
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 0, 0, 64, 17, 0, b"\x7f\0\0\1", b"\x7f\0\0\1"
    )
    return ip + struct.pack("!HHHH", 5000, 6000, 8 + len(payload), 0) + payload


HEAD = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + block(
    1, struct.pack("<HHI", 101, 0, 0) + struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
)


def test_datagrams_with_their_times_and_payloads() -> None:
    data = (
        HEAD
        + epb(1_000_000_123, udp(b"rtp-1"))
        + epb(2_000_000_000, b"\x60" + b"\0" * 39)
        + epb(3, udp(b"rtp-2"))
    )
    found = scan(data)
    assert found.stopped is None
    assert [(t, data[s:e]) for t, _, s, e in found.datagrams] == [(1_000_000_123, b"rtp-1"), (3, b"rtp-2")]


def test_a_torn_file_keeps_what_came_before() -> None:
    good = HEAD + epb(1, udp(b"one")) + epb(2, udp(b"two"))
    found = scan(good + epb(3, udp(b"three"))[:-7])
    assert len(found.datagrams) == 2 and found.stopped is not None and "truncated" in found.stopped
    lying = good + struct.pack("<II", 6, 1 << 30) + b"\0" * 64
    found = scan(lying)
    assert len(found.datagrams) == 2 and "impossible" in (found.stopped or "")
    assert scan(b"GIF89a" + b"\0" * 40).stopped == "not a pcapng file (no Section Header Block at its start)"


def test_random_corruption_never_raises() -> None:
    data = HEAD + b"".join(epb(i, udp(bytes(30))) for i in range(50))
    rng = random.Random(18)
    for _ in range(2000):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        found = scan(bytes(bad[: rng.randint(0, len(bad))]))
        for _, _, start, end in found.datagrams:
            assert 0 <= start <= end <= len(bad)
