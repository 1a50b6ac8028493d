"""Reading pcapng captures: CallVault's capture segments, and any pcapng of UDP over raw IP, IPv4,
IPv6 or Ethernet (what Wireshark writes back when one saves a filtered view).

Pure: `parse(data)` takes the file's bytes. Every length is checked against the block and the file
before it is used; a truncated or inconsistent file raises `CaptureError` naming the offset, and
`complete_length(data)` tells how far a file holds whole blocks (what a crash leaves of an open segment
is valid up to there; recovery cuts it back to that length).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Literal

from recorder.capture import pcapng
from recorder.errors import CallVaultError

MAX_BLOCK = 1 << 20
"""No block CallVault writes comes near this (a packet is at most 64 KiB); a longer one is hostile."""

SPEC_PREFIX = "callvault-stream "
"""The Section Header comment holding the track's stream description (JSON)."""
EVENT_PREFIX = "callvault "

LINKTYPE_ETHERNET = 1
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229


class CaptureError(CallVaultError):
    """A capture cannot be read: the message names the offset and what is wrong."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram of a capture."""

    time_ns: int
    interface: int
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """A commented packet without UDP (CallVault's events: pause start and end, the forwarder)."""

    time_ns: int
    comment: str


@dataclass(slots=True)
class Interface:
    linktype: int
    name: str = ""
    description: str = ""
    tsresol: int = 1_000_000  # ticks per second


@dataclass(slots=True)
class Capture:
    comments: list[str] = field(default_factory=list)
    """The Section Header comments, in order (of every section)."""
    interfaces: list[Interface] = field(default_factory=list)
    datagrams: list[Datagram] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    skipped: int = 0
    """Packets that are not UDP over IP (or not on a known interface)."""

    @property
    def stream(self) -> dict[str, object] | None:
        """The stream description CallVault wrote (the track's StreamSpec as JSON), if any."""
        for comment in self.comments:
            if comment.startswith(SPEC_PREFIX):
                try:
                    value = json.loads(comment[len(SPEC_PREFIX) :])
                except ValueError as exc:
                    raise CaptureError(f"the stream description is not JSON: {exc}") from None
                if not isinstance(value, dict):
                    raise CaptureError("the stream description is not a JSON object")
                return value
        return None


def complete_length(data: bytes) -> int:
    """Bytes of `data` that are whole blocks (0 when it does not start with a Section Header)."""
    offset = 0
    end = len(data)
    little = True
    while offset + 12 <= end:
        block_type = int.from_bytes(data[offset : offset + 4], "little")
        if block_type == pcapng.SHB_TYPE:
            magic = data[offset + 8 : offset + 12]
            if magic == b"\x4d\x3c\x2b\x1a":
                little = True
            elif magic == b"\x1a\x2b\x3c\x4d":
                little = False
            else:
                break
        elif offset == 0:
            break
        order: Literal["little", "big"] = "little" if little else "big"
        total = int.from_bytes(data[offset + 4 : offset + 8], order)
        if total < 12 or total % 4 or total > MAX_BLOCK or offset + total > end:
            break
        if int.from_bytes(data[offset + total - 4 : offset + total], order) != total:
            break
        offset += total
    return offset


def parse(data: bytes) -> Capture:
    """Every block of a pcapng file; raises CaptureError on anything malformed or truncated."""
    capture = Capture()
    if len(data) < 12 or int.from_bytes(data[:4], "little") != pcapng.SHB_TYPE:
        raise CaptureError("not a pcapng file (no Section Header Block at its start)")
    offset = 0
    end = len(data)
    endian = "<"
    section: list[Interface] = []
    while offset < end:
        if end - offset < 12:
            raise CaptureError(f"truncated block at offset {offset} ({end - offset} bytes left)")
        block_type = int.from_bytes(data[offset : offset + 4], "little")
        if block_type == pcapng.SHB_TYPE:
            magic = data[offset + 8 : offset + 12]
            if magic == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise CaptureError(f"bad byte-order magic in the Section Header at offset {offset}")
            section = []
        else:
            (block_type,) = struct.unpack_from(endian + "I", data, offset)
        (total,) = struct.unpack_from(endian + "I", data, offset + 4)
        if total < 12 or total % 4:
            raise CaptureError(f"block at offset {offset} has an impossible length {total}")
        if total > MAX_BLOCK:
            raise CaptureError(f"block at offset {offset} claims {total} bytes (more than {MAX_BLOCK})")
        if offset + total > end:
            raise CaptureError(
                f"truncated block at offset {offset}: {total} bytes announced, {end - offset} in the file"
            )
        (trailer,) = struct.unpack_from(endian + "I", data, offset + total - 4)
        if trailer != total:
            raise CaptureError(f"block at offset {offset}: lengths {total} and {trailer} differ")
        body = data[offset + 8 : offset + total - 4]
        if block_type == pcapng.SHB_TYPE:
            _section_header(body, endian, offset, capture)
        elif block_type == pcapng.IDB_TYPE:
            section.append(_interface(body, endian, offset))
            capture.interfaces.append(section[-1])
        elif block_type == pcapng.EPB_TYPE:
            _packet(body, endian, offset, section, capture)
        # other blocks (statistics, name resolution, custom) carry nothing a replay needs
        offset += total
    return capture


def _options(body: bytes, start: int, endian: str, offset: int) -> list[tuple[int, bytes]]:
    out = []
    pos = start
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        if code == pcapng.OPT_ENDOFOPT:
            break
        if pos + 4 + length > len(body):
            raise CaptureError(f"block at offset {offset}: option {code} runs past the block")
        out.append((code, body[pos + 4 : pos + 4 + length]))
        pos += 4 + length + (-length & 3)
    return out


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace").rstrip("\0")


def _section_header(body: bytes, endian: str, offset: int, capture: Capture) -> None:
    if len(body) < 16:
        raise CaptureError(f"Section Header at offset {offset} is too short")
    major = struct.unpack_from(endian + "H", body, 4)[0]
    if major != 1:
        raise CaptureError(f"Section Header at offset {offset}: pcapng version {major} is not 1")
    for code, value in _options(body, 16, endian, offset):
        if code == pcapng.OPT_COMMENT:
            capture.comments.append(_text(value))


def _interface(body: bytes, endian: str, offset: int) -> Interface:
    if len(body) < 8:
        raise CaptureError(f"Interface Description at offset {offset} is too short")
    interface = Interface(linktype=struct.unpack_from(endian + "H", body, 0)[0])
    for code, value in _options(body, 8, endian, offset):
        if code == pcapng.IF_NAME:
            interface.name = _text(value)
        elif code == pcapng.IF_DESCRIPTION:
            interface.description = _text(value)
        elif code == pcapng.IF_TSRESOL and len(value) >= 1:
            exponent = value[0] & 0x7F
            if exponent > 30:
                raise CaptureError(f"Interface Description at offset {offset}: timestamp resolution too fine")
            interface.tsresol = (2 if value[0] & 0x80 else 10) ** exponent
    return interface


def _packet(body: bytes, endian: str, offset: int, section: list[Interface], capture: Capture) -> None:
    if len(body) < 20:
        raise CaptureError(f"Enhanced Packet at offset {offset} is too short")
    index, high, low, caplen, _ = struct.unpack_from(endian + "5I", body, 0)
    if 20 + caplen > len(body):
        raise CaptureError(
            f"Enhanced Packet at offset {offset}: {caplen} captured bytes do not fit the block"
        )
    if index >= len(section):
        raise CaptureError(
            f"Enhanced Packet at offset {offset} names interface {index}, which is not described"
        )
    interface = section[index]
    ticks = (high << 32) | low
    time_ns = ticks * 1_000_000_000 // interface.tsresol
    packet = body[20 : 20 + caplen]
    comments = [
        _text(v)
        for c, v in _options(body, 20 + caplen + (-caplen & 3), endian, offset)
        if c == pcapng.OPT_COMMENT
    ]
    datagram = _udp(packet, interface.linktype)
    if datagram is None:
        for comment in comments:
            capture.events.append(Event(time_ns, comment))
        if not comments:
            capture.skipped += 1
        return
    source, destination, payload = datagram
    capture.datagrams.append(Datagram(time_ns, index, source, destination, payload))


def _udp(packet: bytes, linktype: int) -> tuple[tuple[str, int], tuple[str, int], bytes] | None:
    """Source, destination and payload of a UDP datagram (None: not UDP over IP, or cut short)."""
    if linktype == LINKTYPE_ETHERNET:
        if len(packet) < 14:
            return None
        ethertype = int.from_bytes(packet[12:14], "big")
        if ethertype not in (0x0800, 0x86DD):
            return None
        packet = packet[14:]
    elif linktype not in (pcapng.LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return None
    if not packet:
        return None
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or len(packet) < ihl + 8 or packet[9] != 17:
            return None
        if int.from_bytes(packet[6:8], "big") & 0x3FFF:  # a fragment: not reassembled here
            return None
        src = ".".join(str(b) for b in packet[12:16])
        dst = ".".join(str(b) for b in packet[16:20])
        udp = packet[ihl:]
    elif version == 6:
        if len(packet) < 48 or packet[6] != 17:
            return None
        src = str(IPv6Address(packet[8:24]))
        dst = str(IPv6Address(packet[24:40]))
        udp = packet[40:]
    else:
        return None
    sport, dport, length = struct.unpack_from("!HHH", udp, 0)
    if length < 8 or length > len(udp):
        return None
    return (src, sport), (dst, dport), bytes(udp[8:length])
