"""RTP packets (RFC 3550 §5.1) with RFC 8285 header extensions.

`RtpPacket.parse` is on the hot path: one struct call for the fixed header, slices for the rest, and
validation that rejects every malformed packet with a MalformedPacketError naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from recorder.errors import MalformedPacketError

RTP_HEADER_SIZE = 12
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """One RFC 8285 header extension element."""

    id: int
    value: bytes


def parse_extensions(profile: int | None, data: bytes) -> tuple[HeaderExtension, ...]:
    """The elements of an RFC 8285 extension block (§4.2 one-byte, §4.3 two-byte); () for other
    profiles. Raises MalformedPacketError when an element runs past the block."""
    if profile == ONE_BYTE_PROFILE:
        one_byte = True
    elif profile is not None and profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        one_byte = False
    else:
        return ()
    elements = []
    i, end = 0, len(data)
    while i < end:
        first = data[i]
        if first == 0:  # padding
            i += 1
            continue
        if one_byte:
            ext_id, length = first >> 4, (first & 0x0F) + 1
            if ext_id == 15:  # RFC 8285 §4.2: stop processing
                break
            i += 1
        else:
            if i + 1 >= end:
                raise MalformedPacketError("RTP two-byte header extension element is truncated")
            ext_id, length = first, data[i + 1]
            i += 2
        if i + length > end:
            raise MalformedPacketError(f"RTP header extension {ext_id} has length {length} past the block")
        elements.append(HeaderExtension(ext_id, data[i : i + length]))
        i += length
    return tuple(elements)


def build_extensions(extensions: list[HeaderExtension]) -> tuple[int | None, bytes]:
    """(profile, block) for these elements: one-byte form when every id is 1..14 and value 1..16
    bytes, else two-byte form; the block is zero-padded to 32 bits."""
    if not extensions:
        return None, b""
    if all(1 <= e.id <= 14 and 1 <= len(e.value) <= 16 for e in extensions):
        profile = ONE_BYTE_PROFILE
        body = b"".join(bytes([(e.id << 4) | (len(e.value) - 1)]) + e.value for e in extensions)
    else:
        if any(not 1 <= e.id <= 255 or len(e.value) > 255 for e in extensions):
            raise ValueError("RTP header extension ids must be 1..255 and values at most 255 bytes")
        profile = TWO_BYTE_PROFILE
        body = b"".join(bytes([e.id, len(e.value)]) + e.value for e in extensions)
    return profile, body + b"\x00" * (-len(body) % 4)


class RtpPacket:
    __slots__ = (
        "csrc",
        "extension_data",
        "extension_profile",
        "marker",
        "padding_size",
        "payload",
        "payload_type",
        "sequence_number",
        "ssrc",
        "timestamp",
    )

    def __init__(
        self,
        payload_type: int = 0,
        sequence_number: int = 0,
        timestamp: int = 0,
        ssrc: int = 0,
        payload: bytes = b"",
        marker: bool = False,
        csrc: tuple[int, ...] = (),
        extension_profile: int | None = None,
        extension_data: bytes = b"",
        padding_size: int = 0,
    ) -> None:
        self.payload_type = payload_type
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrc = csrc
        self.extension_profile = extension_profile
        self.extension_data = extension_data
        self.padding_size = padding_size

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise MalformedPacketError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise MalformedPacketError(f"RTP packet has version {b0 >> 6}, expected 2")
        packet = cls.__new__(cls)
        packet.marker = b1 >= 0x80
        packet.payload_type = b1 & 0x7F
        packet.sequence_number = seq
        packet.timestamp = ts
        packet.ssrc = ssrc
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        if cc:
            end = pos + 4 * cc
            if end > size:
                raise MalformedPacketError("RTP packet has truncated CSRC list")
            packet.csrc = struct.unpack_from(f"!{cc}I", data, pos)
            pos = end
        else:
            packet.csrc = ()
        if b0 & 0x10:
            if pos + 4 > size:
                raise MalformedPacketError("RTP packet has truncated extension header")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > size:
                raise MalformedPacketError(f"RTP extension of {words} words runs past the packet")
            packet.extension_profile = profile
            packet.extension_data = data[pos + 4 : end]
            parse_extensions(profile, packet.extension_data)  # validate once, here
            pos = end
        else:
            packet.extension_profile = None
            packet.extension_data = b""
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or pos + padding > size:
                raise MalformedPacketError(f"RTP packet has invalid padding size {padding}")
            packet.padding_size = padding
            packet.payload = data[pos : size - padding]
        else:
            packet.padding_size = 0
            packet.payload = data[pos:]
        return packet

    def extensions(self) -> tuple[HeaderExtension, ...]:
        return parse_extensions(self.extension_profile, self.extension_data)

    def serialize(self) -> bytes:
        b0 = 0x80 | len(self.csrc)
        if self.padding_size:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        parts = [
            _HEADER.pack(
                b0,
                (0x80 if self.marker else 0) | self.payload_type,
                self.sequence_number,
                self.timestamp,
                self.ssrc,
            )
        ]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension_profile is not None:
            if len(self.extension_data) % 4:
                raise ValueError("RTP extension data must be a multiple of 4 bytes")
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(b"\x00" * (self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RtpPacket(seq={self.sequence_number}, ts={self.timestamp}, pt={self.payload_type},"
            f" ssrc={self.ssrc:08x}, marker={self.marker}, payload={len(self.payload)} bytes)"
        )
