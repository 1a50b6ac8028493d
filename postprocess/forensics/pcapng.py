"""A fast, bounds-checked scan of pcapng files for what a report needs: each UDP datagram's arrival time
(ns), interface and payload, the Section Header comments, and comment-only event packets. It reads the
same files as recorder/capture/reader.py (CallVault's captures and any pcapng of UDP over raw IP, IPv4,
IPv6 or Ethernet) but skips everything a report does not need, so an hour of a call reads in seconds.

Pure: bytes in. A malformed block ends the scan there: `Scan.stopped` says where and why, and what came
before it is kept (a capture cut short by a crash reads up to its last whole block).
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import dataclass, field

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
MAX_BLOCK = 1 << 20
OPT_COMMENT = 1
IF_TSRESOL = 9
LINK_ETHERNET, LINK_RAW, LINK_IPV4, LINK_IPV6 = 1, 101, 228, 229


@dataclass(slots=True)
class Scan:
    comments: list[str] = field(default_factory=list)
    times: array[int] = field(default_factory=lambda: array("q"))
    """Arrival (ns) of each UDP datagram, in file order."""
    starts: array[int] = field(default_factory=lambda: array("q"))
    """Offset of each datagram's UDP payload in the scanned bytes."""
    ends: array[int] = field(default_factory=lambda: array("q"))
    interfaces: array[int] = field(default_factory=lambda: array("q"))

    @property
    def datagrams(self) -> list[tuple[int, int, int, int]]:
        """(time ns, interface, payload start, payload end) of each UDP datagram."""
        return list(zip(self.times, self.interfaces, self.starts, self.ends, strict=True))

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
    times, starts, ends, interfaces = out.times, out.starts, out.ends, out.interfaces
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
        offset += total
        if kind == EPB:
            if total < 32:
                continue
            index, high, low, caplen = unpack(fmt + "4I", view, offset - total + 8)
            if index >= len(links) or 32 + caplen > total:
                continue
            linktype, resolution = links[index]
            packet = offset - total + 28  # where the captured bytes start in `data`
            if linktype in (LINK_RAW, LINK_IPV4) and caplen >= 28 and view[packet] >> 4 == 4:
                ihl = (view[packet] & 0x0F) * 4  # the common case, inline: IPv4 + UDP
                udp = ihl >= 20 and view[packet + 9] == 17 and caplen >= ihl + 8
                start = packet + ihl + 8 if udp else None
            else:
                start = _udp_offset(view[packet : packet + caplen], linktype)
                start = None if start is None else packet + start
            time_ns = ((high << 32) | low) * 1_000_000_000 // resolution
            if time_ns >= 1 << 62:  # past the year 2116: a corrupt timestamp
                continue
            if start is not None:
                times.append(time_ns)
                starts.append(start)
                ends.append(packet + caplen)
                interfaces.append(index)
            elif caplen == 0:
                for code, value in _options(view[packet : offset - 4], 0, fmt):
                    if code == OPT_COMMENT:
                        out.events.append((time_ns, value.decode("utf-8", "replace").rstrip("\0")))
            continue
        body = view[offset - total + 8 : offset - 4]
        if kind == IDB:
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
