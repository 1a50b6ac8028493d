"""A fast, bounds-checked scan of pcapng files for what a report needs: each UDP datagram's arrival time
(ns), interface and payload, the Section Header comments, and comment-only event packets. It reads the
same files as recorder/capture/reader.py (CallVault's captures and any pcapng of UDP over raw IP, IPv4,
IPv6 or Ethernet) but skips everything a report does not need, so an hour of a call reads in seconds.

Pure: bytes in. A malformed block ends the scan there: `Scan.stopped` says where and why, and what came
before it is kept (a capture cut short by a crash reads up to its last whole block).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
MAX_BLOCK = 1 << 20
OPT_COMMENT = 1
IF_TSRESOL = 9
LINK_ETHERNET, LINK_RAW, LINK_IPV4, LINK_IPV6 = 1, 101, 228, 229


@dataclass(slots=True)
class Scan:
    comments: list[str] = field(default_factory=list)
    datagrams: list[tuple[int, int, bytes]] = field(default_factory=list)
    """(time ns, interface index, UDP payload), in file order."""
    events: list[tuple[int, str]] = field(default_factory=list)
    """(time ns, comment) of packets without UDP that carry a comment."""
    stopped: str | None = None


def _options(body: memoryview, pos: int, fmt: str) -> list[tuple[int, bytes]]:
    out = []
    end = len(body)
    while pos + 4 <= end:
        code, length = struct.unpack_from(fmt + "HH", body, pos)
        if code == 0 or pos + 4 + length > end:
            break
        out.append((code, bytes(body[pos + 4 : pos + 4 + length])))
        pos += 4 + length + (-length & 3)
    return out


def _udp_offset(packet: memoryview, linktype: int) -> int | None:
    """Offset of the UDP payload in a captured packet, or None when it is not UDP over IP."""
    pos = 0
    if linktype == LINK_ETHERNET:
        if len(packet) < 14:
            return None
        ethertype = int.from_bytes(packet[12:14], "big")
        pos = 14
        if ethertype == 0x8100 and len(packet) >= 18:
            ethertype, pos = int.from_bytes(packet[16:18], "big"), 18
        if ethertype not in (0x0800, 0x86DD):
            return None
    elif linktype not in (LINK_RAW, LINK_IPV4, LINK_IPV6):
        return None
    if len(packet) < pos + 1:
        return None
    version = packet[pos] >> 4
    if version == 4:
        ihl = (packet[pos] & 0x0F) * 4
        if ihl < 20 or len(packet) < pos + ihl + 8 or packet[pos + 9] != 17:
            return None
        pos += ihl
    elif version == 6:
        if len(packet) < pos + 48 or packet[pos + 6] != 17:
            return None
        pos += 40
    else:
        return None
    return pos + 8


def scan(data: bytes) -> Scan:
    out = Scan()
    view = memoryview(data)
    end = len(data)
    offset = 0
    fmt = "<"
    links: list[tuple[int, int]] = []  # (linktype, ticks per second) per interface of the section
    unpack = struct.unpack_from
    while offset < end:
        if end - offset < 12:
            out.stopped = f"truncated block at offset {offset}"
            break
        kind = int.from_bytes(view[offset : offset + 4], "little")
        if kind == SHB:
            magic = bytes(view[offset + 8 : offset + 12])
            if magic not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                out.stopped = f"bad byte-order magic at offset {offset}"
                break
            fmt = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        elif offset == 0:
            out.stopped = "not a pcapng file (no Section Header Block at its start)"
            break
        else:
            (kind,) = unpack(fmt + "I", view, offset)
        (total,) = unpack(fmt + "I", view, offset + 4)
        if total < 12 or total % 4 or total > MAX_BLOCK or offset + total > end:
            out.stopped = f"block at offset {offset}: impossible or truncated length {total}"
            break
        body = view[offset + 8 : offset + total - 4]
        offset += total
        if kind == EPB:
            if len(body) < 20:
                continue
            index, high, low, caplen = unpack(fmt + "4I", body, 0)
            if index >= len(links) or 20 + caplen > len(body):
                continue
            linktype, resolution = links[index]
            time_ns = ((high << 32) | low) * 1_000_000_000 // resolution
            packet = body[20 : 20 + caplen]
            start = _udp_offset(packet, linktype)
            if start is not None:
                out.datagrams.append((time_ns, index, bytes(packet[start:])))
            elif caplen == 0:
                for code, value in _options(body, 20, fmt):
                    if code == OPT_COMMENT:
                        out.events.append((time_ns, value.decode("utf-8", "replace").rstrip("\0")))
        elif kind == IDB:
            if len(body) < 8:
                continue
            resolution = 1_000_000
            for code, value in _options(body, 8, fmt):
                if code == IF_TSRESOL and value and (value[0] & 0x7F) <= 30:
                    resolution = (2 if value[0] & 0x80 else 10) ** (value[0] & 0x7F)
            links.append((unpack(fmt + "H", body, 0)[0], resolution))
        elif kind == SHB and len(body) >= 16:
            for code, value in _options(body, 16, fmt):
                if code == OPT_COMMENT:
                    out.comments.append(value.decode("utf-8", "replace").rstrip("\0"))
    return out
