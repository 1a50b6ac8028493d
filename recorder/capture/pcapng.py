"""pcapng blocks (the IETF draft "PCAP Now Generic", draft-ietf-opsawg-pcapng) as CallVault writes them.

No sockets, no files: functions that return bytes, and `UdpEncoder`, the per-packet hot path that wraps
an RTP or RTCP datagram in a synthesized IPv4 or IPv6 + UDP header (the real source address and port,
the recorder's local address and port) inside an Enhanced Packet Block, so Wireshark and tshark see UDP
with the true addresses. Everything is little-endian; timestamps are nanoseconds (`if_tsresol` 9).

A CallVault capture segment is: one Section Header Block (comments: what it is, the track, its stream
description as JSON), Interface Description Blocks (0: the track's RTP socket, 1: its RTCP socket, 2:
CallVault's events), then Enhanced Packet Blocks in arrival order. Events (pause start and end, the
forwarder that locked the track) are Enhanced Packet Blocks of zero bytes on interface 2 whose comment
says what happened; Wireshark lists them as frames with a comment (`frame.comment`).
"""

from __future__ import annotations

import ipaddress
import struct

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9

LINKTYPE_RAW = 101
"""Raw IP: each packet starts with an IPv4 or IPv6 header."""
LINKTYPE_USER0 = 147
"""CallVault's event interface: zero-byte packets that carry only a comment."""

TSRESOL_NS = 9
SNAPLEN = 0  # no limit: every packet is kept whole

IF_RTP = 0
IF_RTCP = 1
IF_EVENTS = 2

_HEAD = struct.Struct("<II")
_EPB = struct.Struct("<IIIIIII")
_IPV4_UDP = struct.Struct("!BBHHHBBH4s4sHHHH")
_IPV6_UDP = struct.Struct("!IHBB16s16sHHHH")
_U32 = struct.Struct("<I")
_OPT = struct.Struct("<HH")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def _pad(n: int) -> bytes:
    return _PAD[n & 3]


def options(items: list[tuple[int, bytes]]) -> bytes:
    """An options list (each value padded to 32 bits) ended by opt_endofopt; empty when no option."""
    if not items:
        return b""
    out = bytearray()
    for code, value in items:
        if len(value) > 0xFFFF:
            raise ValueError(f"pcapng option {code} is {len(value)} bytes, more than 65535")
        out += _OPT.pack(code, len(value)) + value + _pad(len(value))
    out += _OPT.pack(OPT_ENDOFOPT, 0)
    return bytes(out)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _HEAD.pack(block_type, total) + body + _U32.pack(total)


def section_header(comments: list[str], application: str) -> bytes:
    """A Section Header Block, section length unknown (-1: written as the call goes)."""
    opts = [(OPT_COMMENT, c.encode()) for c in comments] + [(SHB_USERAPPL, application.encode())]
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options(opts)
    return _block(SHB_TYPE, body)


def interface_description(linktype: int, name: str, description: str) -> bytes:
    """An Interface Description Block with nanosecond timestamps."""
    opts = [
        (IF_NAME, name.encode()),
        (IF_DESCRIPTION, description.encode()),
        (IF_TSRESOL, bytes([TSRESOL_NS])),
    ]
    body = struct.pack("<HHI", linktype, 0, SNAPLEN) + options(opts)
    return _block(IDB_TYPE, body)


def enhanced_packet(interface: int, time_ns: int, data: bytes, comment: str | None = None) -> bytes:
    """An Enhanced Packet Block holding `data` whole, with an optional comment."""
    opts = options([(OPT_COMMENT, comment.encode())]) if comment else b""
    n = len(data)
    total = 32 + n + (-n & 3) + len(opts)
    head = _EPB.pack(EPB_TYPE, total, interface, time_ns >> 32, time_ns & 0xFFFFFFFF, n, n)
    return head + data + _pad(n) + opts + _U32.pack(total)


def event(time_ns: int, text: str) -> bytes:
    """A CallVault event: a zero-byte packet on the events interface, `text` as its comment."""
    return enhanced_packet(IF_EVENTS, time_ns, b"", text)


def _checksum_fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _sum16(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


class UdpEncoder:
    """Enhanced Packet Blocks of UDP datagrams between one source and one destination, on one interface.

    IPv4: identification 0 with DF set (atomic datagrams, RFC 6864), the header checksum right, the UDP
    checksum zero (optional in IPv4). IPv6: the UDP checksum is computed (it is mandatory there). An
    IPv4-mapped IPv6 address is written as the IPv4 address it is."""

    def __init__(self, interface: int, source: tuple[str, int], destination: tuple[str, int]) -> None:
        src, dst = _address(source[0]), _address(destination[0])
        if src.version != dst.version:  # a dual-stack socket bound to '::' receiving IPv4
            dst = ipaddress.IPv4Address(0) if src.version == 4 else ipaddress.IPv6Address(0)
        self.interface = interface
        self.sport, self.dport = source[1], destination[1]
        self.src, self.dst = src.packed, dst.packed
        self.v6 = src.version == 6
        if not self.v6:
            # version/IHL + TOS, flags (DF), TTL + protocol, source, destination: constant per pair
            words = struct.unpack("!4H", self.src + self.dst)
            self._base = 0x4500 + 0x4000 + (64 << 8 | 17) + sum(words)
        else:
            self._pseudo = _sum16(self.src + self.dst) + 17

    def ipv4_entry(self, n: int) -> tuple[int, int, bytes, bytes]:
        """For an IPv4 datagram of `n` payload bytes: the block's total length, the captured length, the
        IPv4 + UDP header and what follows the payload (padding and the trailing length). Identification
        is 0 (the datagrams are atomic, DF set: RFC 6864), so all of it depends on `n` only and is cached
        by the caller."""
        length = n + 28
        csum = ~_checksum_fold(self._base + length) & 0xFFFF
        header = _IPV4_UDP.pack(
            0x45, 0, length, 0, 0x4000, 64, 17, csum, self.src, self.dst, self.sport, self.dport, n + 8, 0
        )
        total = 32 + length + (-length & 3)
        return total, length, header, _PAD[length & 3] + _U32.pack(total)

    def block(self, time_ns: int, payload: bytes) -> bytes:
        """The Enhanced Packet Block of one datagram that arrived at `time_ns` (Unix nanoseconds)."""
        n = len(payload)
        if not self.v6:
            total, caplen, header, tail = self.ipv4_entry(n)
            head = _EPB.pack(
                EPB_TYPE, total, self.interface, time_ns >> 32, time_ns & 0xFFFFFFFF, caplen, caplen
            )
            return b"".join((head, header, payload, tail))
        udp_len = n + 8
        checksum = self._pseudo + udp_len + self.sport + self.dport + udp_len + _sum16(payload)
        checksum = ~_checksum_fold(checksum) & 0xFFFF or 0xFFFF
        header = _IPV6_UDP.pack(
            0x60000000, udp_len, 17, 64, self.src, self.dst, self.sport, self.dport, udp_len, checksum
        )
        caplen = n + 48
        total = 32 + caplen + (-caplen & 3)
        return b"".join(
            (
                _EPB.pack(
                    EPB_TYPE, total, self.interface, time_ns >> 32, time_ns & 0xFFFFFFFF, caplen, caplen
                ),
                header,
                payload,
                _PAD[caplen & 3],
                _U32.pack(total),
            )
        )


EPB_HEAD = _EPB
"""Type, total length, interface, timestamp high and low, captured and original length."""


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
