"""RTP packets (RFC 3550 §5.1, §5.3.1) with RFC 8285 header extensions.

`RtpPacket.parse` is on the hot path: one struct call for the fixed header, slices for the rest, and
checks that reject every malformed packet with a MalformedPacketError naming what is wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from recorder.errors import MalformedPacketError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
ONE_BYTE_PROFILE = 0xBEDE  # RFC 8285 §4.2
TWO_BYTE_PROFILE = 0x1000  # RFC 8285 §4.3; the low 4 bits are "appbits"
TWO_BYTE_PROFILE_MASK = 0xFFF0

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_CSRC = tuple(struct.Struct(f"!{n}I") for n in range(16))


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """One RFC 8285 header extension element: local identifier and value."""

    id: int
    value: bytes


def _scan_extensions(profile: int | None, data: bytes, out: list[HeaderExtension] | None) -> None:
    """Walk an RFC 8285 block, appending its elements to `out` (or only checking it when None).

    Zero bytes are padding (§4.2, §4.3). In the one-byte form, id 15 ends the block (§4.2) and so does
    id 0 with a non-zero length, which is neither padding nor a valid element (as libwebrtc does).
    Raises MalformedPacketError when an element runs past the block.
    """
    if profile == ONE_BYTE_PROFILE:
        one_byte = True
    elif profile is not None and profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        one_byte = False
    else:
        return
    i, end = 0, len(data)
    while i < end:
        first = data[i]
        if first == 0:
            i += 1
            continue
        if one_byte:
            ext_id = first >> 4
            if ext_id in {0, 15}:
                return
            length = (first & 0x0F) + 1
            i += 1
        else:
            if i + 1 >= end:
                raise MalformedPacketError(f"RTP two-byte header extension {first} has no length byte")
            ext_id, length = first, data[i + 1]
            i += 2
        if i + length > end:
            raise MalformedPacketError(
                f"RTP header extension {ext_id} of {length} bytes runs past the {end}-byte block"
            )
        if out is not None:
            out.append(HeaderExtension(ext_id, data[i : i + length]))
        i += length


def parse_extensions(profile: int | None, data: bytes) -> tuple[HeaderExtension, ...]:
    """The elements of an RFC 8285 extension block body; () for profiles that are not RFC 8285."""
    out: list[HeaderExtension] = []
    _scan_extensions(profile, data, out)
    return tuple(out)


def build_extensions(extensions: list[HeaderExtension], appbits: int = 0) -> tuple[int | None, bytes]:
    """(profile, block body) for these elements, zero-padded to 32 bits; (None, b"") for none.

    The one-byte form (§4.2) is used when every id is 1..14, every value 1..16 bytes and `appbits` is
    0; otherwise the two-byte form (§4.3) with profile 0x1000 | appbits.
    """
    if not extensions:
        return None, b""
    if not appbits and all(1 <= e.id <= 14 and 1 <= len(e.value) <= 16 for e in extensions):
        profile = ONE_BYTE_PROFILE
        body = b"".join(bytes([(e.id << 4) | (len(e.value) - 1)]) + e.value for e in extensions)
    else:
        if not 0 <= appbits <= 15:
            raise ValueError(f"RTP two-byte header extension appbits {appbits} is not 0..15")
        for e in extensions:
            if not 1 <= e.id <= 255 or len(e.value) > 255:
                raise ValueError(
                    f"RTP header extension {e.id} of {len(e.value)} bytes: two-byte ids are 1..255,"
                    " values at most 255 bytes"
                )
        profile = TWO_BYTE_PROFILE | appbits
        body = b"".join(bytes([e.id, len(e.value)]) + e.value for e in extensions)
    return profile, body + bytes(-len(body) % 4)


class RtpPacket:
    """One RTP packet (RFC 3550 §5.1); `version` is always 2.

    `extension_data` is the raw extension block body (without its profile/length word) and
    `extension_profile` is None when the packet has no extension. `payload` excludes the padding;
    `padding_size` counts the padding octets including the final count octet (0: no padding).
    """

    __slots__ = (
        "_padding",
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
    version: ClassVar[int] = RTP_VERSION
    _FIELDS: ClassVar[tuple[str, ...]] = (
        "payload_type",
        "sequence_number",
        "timestamp",
        "ssrc",
        "payload",
        "marker",
        "csrc",
        "extension_profile",
        "extension_data",
        "padding_size",
    )

    marker: bool
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc: tuple[int, ...]
    extension_profile: int | None
    extension_data: bytes
    payload: bytes
    padding_size: int
    _padding: bytes  # the received padding octets, so serialize() gives the input back byte for byte

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
        self._padding = b""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raises MalformedPacketError saying what is wrong."""
        size = len(data)
        if size < RTP_HEADER_SIZE:
            raise MalformedPacketError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
        if b0 >> 6 != RTP_VERSION:
            raise MalformedPacketError(f"RTP packet has version {b0 >> 6}, expected 2")
        marker = b1 > 0x7F
        if b0 == 0x80:  # the usual packet: no CSRC, no extension, no padding
            return RtpPacket(b1 & 0x7F, seq, ts, ssrc, data[RTP_HEADER_SIZE:], marker)
        pos = RTP_HEADER_SIZE
        cc = b0 & 0x0F
        csrc: tuple[int, ...] = ()
        if cc:
            pos += 4 * cc
            if pos > size:
                raise MalformedPacketError(f"RTP packet has truncated CSRC list ({cc} entries)")
            csrc = _CSRC[cc].unpack_from(data, RTP_HEADER_SIZE)
        profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if pos + 4 > size:
                raise MalformedPacketError("RTP packet has truncated extension header")
            profile, words = _EXT_HEADER.unpack_from(data, pos)
            end = pos + 4 + 4 * words
            if end > size:
                raise MalformedPacketError(
                    f"RTP packet has a {words}-word header extension running past its end"
                )
            ext = data[pos + 4 : end]
            _scan_extensions(profile, ext, None)
            pos = end
        if not b0 & 0x20:
            return RtpPacket(b1 & 0x7F, seq, ts, ssrc, data[pos:], marker, csrc, profile, ext)
        padding = data[-1]
        if padding == 0 or padding > size - pos:
            raise MalformedPacketError(
                f"RTP packet has invalid padding size {padding} for {size - pos} bytes after the header"
            )
        packet = RtpPacket(
            b1 & 0x7F, seq, ts, ssrc, data[pos : size - padding], marker, csrc, profile, ext, padding
        )
        packet._padding = data[size - padding :]
        return packet

    def extensions(self) -> tuple[HeaderExtension, ...]:
        """The RFC 8285 elements of the extension block; () without one or for other profiles."""
        if self.extension_profile is None:
            return ()
        return parse_extensions(self.extension_profile, self.extension_data)

    def serialize(self) -> bytes:
        """The packet on the wire. Padding octets are zeros unless this packet was parsed with them."""
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} is not 0..127")
        if len(self.csrc) > 15:
            raise ValueError(f"RTP packet has {len(self.csrc)} CSRCs, at most 15 fit")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"RTP padding size {self.padding_size} is not 0..255")
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
            parts.append(_CSRC[len(self.csrc)].pack(*self.csrc))
        if self.extension_profile is not None:
            words, rest = divmod(len(self.extension_data), 4)
            if rest or words > 0xFFFF:
                raise ValueError(
                    f"RTP extension data of {len(self.extension_data)} bytes is not a whole number of"
                    " 32-bit words below 2^16"
                )
            parts.append(_EXT_HEADER.pack(self.extension_profile, words))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding_size:
            if len(self._padding) == self.padding_size:
                parts.append(self._padding)
            else:
                parts.append(bytes(self.padding_size - 1) + bytes([self.padding_size]))
        return b"".join(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RtpPacket):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RtpPacket(seq={self.sequence_number}, ts={self.timestamp}, pt={self.payload_type},"
            f" ssrc={self.ssrc:08x}, marker={self.marker}, payload={len(self.payload)} bytes)"
        )
