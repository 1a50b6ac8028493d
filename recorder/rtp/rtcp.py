"""The RTCP a recorder needs: SR, RR, SDES, BYE (RFC 3550 §6.4-6.6), PLI and FIR (RFC 4585 §6.3.1,
RFC 5104 §4.3.1), compound and reduced-size packets (RFC 3550 §6.1, RFC 5506), RTP/RTCP
demultiplexing (RFC 5761 §4). Any other packet (APP, NACK, REMB, XR...) is kept as `UnknownRtcp`, so
a compound packet never fails because of it.

Every class has `parse(data)` for one whole packet (header included) and `serialize()`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Self, TypeVar

from recorder.errors import MalformedPacketError

SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR = 200, 201, 202, 203, 204, 205, 206, 207
FMT_PLI, FMT_FIR = 1, 4
SDES_END, SDES_CNAME, SDES_NAME, SDES_EMAIL, SDES_PHONE, SDES_LOC, SDES_TOOL, SDES_NOTE, SDES_PRIV = range(9)
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
RTCP_HEADER_SIZE = 4
REPORT_BLOCK_SIZE = 24
MAX_COUNT = 31  # the 5-bit count/FMT field

_COMMON = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_TWO_SSRC = struct.Struct("!II")
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, NTP timestamp, RTP timestamp, packets, octets
_REPORT_BLOCK = struct.Struct("!IB3sIIII")
_FIR_ENTRY = struct.Struct("!IB3x")

_P = TypeVar("_P")


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: an RTCP packet type (192..223) in the second byte means RTCP, else RTP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def ntp_to_unix(ntp64: int) -> float:
    """A 64-bit NTP timestamp (RFC 3550 §4) as Unix time in seconds."""
    return (ntp64 >> 32) - NTP_EPOCH_OFFSET + (ntp64 & 0xFFFFFFFF) / 2**32


def unix_to_ntp(t: float) -> int:
    """Unix time in seconds as a 64-bit NTP timestamp (RFC 3550 §4), fraction rounded to nearest."""
    seconds = math.floor(t)
    fraction = round((t - seconds) * 2**32)
    if fraction == 2**32:
        seconds, fraction = seconds + 1, 0
    return (((seconds + NTP_EPOCH_OFFSET) << 32) | fraction) & 0xFFFFFFFFFFFFFFFF


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"RTCP packet type {packet_type} cannot carry count/FMT {count} (0..31)")
    words, rest = divmod(len(body), 4)
    if rest or words > 0xFFFF:
        raise ValueError(f"RTCP body of {len(body)} bytes is not a whole number of 32-bit words below 2^16")
    return _COMMON.pack(0x80 | count, packet_type, words) + body


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1). `packets_lost` is signed 24-bit, clamped when
    serialized; `last_sr` and `delay_since_last_sr` are in NTP short format (1/65536 s)."""

    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int
    delay_since_last_sr: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> Self:
        """The 24-byte block at `offset`."""
        if offset + REPORT_BLOCK_SIZE > len(data):
            raise MalformedPacketError("RTCP report block is truncated")
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        return cls(ssrc, fraction, int.from_bytes(lost, "big", signed=True), highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost))
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            lost.to_bytes(3, "big", signed=True),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )


def _report_blocks(body: bytes, pos: int, count: int, name: str) -> tuple[ReportBlock, ...]:
    if pos + REPORT_BLOCK_SIZE * count > len(body):
        raise MalformedPacketError(
            f"RTCP {name} announces {count} report blocks but its {len(body)}-byte body is too short"
        )
    return tuple(ReportBlock.parse(body, pos + REPORT_BLOCK_SIZE * i) for i in range(count))


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (RFC 3550 §6.4.1); profile-specific extensions after the report blocks are dropped."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        if len(body) < _SENDER_INFO.size:
            raise MalformedPacketError(
                f"RTCP SR body of {len(body)} bytes is shorter than the 24-byte sender info"
            )
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(body)
        return cls(ssrc, ntp, rtp, packets, octets, _report_blocks(body, _SENDER_INFO.size, count, "SR"))

    def serialize(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        return _header(len(self.reports), SR, info + b"".join(r.serialize() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (RFC 3550 §6.4.2); profile-specific extensions after the report blocks are dropped."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        if len(body) < 4:
            raise MalformedPacketError("RTCP RR is truncated before its sender SSRC")
        (ssrc,) = _SSRC.unpack_from(body)
        return cls(ssrc, _report_blocks(body, 4, count, "RR"))

    def serialize(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk (RFC 3550 §6.5): a source and its (item type, value) pairs, e.g. (SDES_CNAME, b"x")."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> bytes | None:
        """The CNAME item (RFC 3550 §6.5.1), if present."""
        return next((value for kind, value in self.items if kind == SDES_CNAME), None)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        chunks: list[SdesChunk] = []
        pos, size = 0, len(body)
        for _ in range(count):
            if pos + 4 > size:
                raise MalformedPacketError(
                    f"RTCP SDES announces {count} chunks but chunk {len(chunks)} is missing"
                )
            (ssrc,) = _SSRC.unpack_from(body, pos)
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= size:
                    raise MalformedPacketError(f"RTCP SDES chunk for {ssrc:08x} has no end-of-items octet")
                kind = body[pos]
                if kind == SDES_END:
                    pos += 1
                    break
                if pos + 2 > size or pos + 2 + body[pos + 1] > size:
                    raise MalformedPacketError(f"RTCP SDES item {kind} runs past the packet")
                length = body[pos + 1]
                items.append((kind, body[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            pos += -pos % 4  # the chunk ends on a 32-bit boundary
            chunks.append(SdesChunk(ssrc, tuple(items)))
        return cls(tuple(chunks))

    def serialize(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += _SSRC.pack(chunk.ssrc)
            for kind, value in chunk.items:
                if not 1 <= kind <= 255 or len(value) > 255:
                    raise ValueError(
                        f"RTCP SDES item {kind} of {len(value)} bytes: types are 1..255, values <= 255 bytes"
                    )
                body += bytes([kind, len(value)]) + value
            body += bytes(4 - len(body) % 4)  # at least one end-of-items octet, then 32-bit alignment
        return _header(len(self.chunks), SDES, bytes(body))


@dataclass(frozen=True, slots=True)
class Goodbye:
    """BYE (RFC 3550 §6.6) with an optional reason."""

    sources: tuple[int, ...]
    reason: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        end = 4 * count
        if end > len(body):
            raise MalformedPacketError(
                f"RTCP BYE announces {count} sources but has room for {len(body) // 4}"
            )
        sources = struct.unpack_from(f"!{count}I", body)
        reason = b""
        if len(body) > end:
            length = body[end]
            reason = body[end + 1 : end + 1 + length]
            if len(reason) != length:
                raise MalformedPacketError(f"RTCP BYE reason of {length} bytes runs past the packet")
        return cls(sources, reason)

    def serialize(self) -> bytes:
        body = b"".join(_SSRC.pack(s) for s in self.sources)
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError(f"RTCP BYE reason of {len(self.reason)} bytes is longer than 255")
            body += bytes([len(self.reason)]) + self.reason
            body += bytes(-len(body) % 4)
        return _header(len(self.sources), BYE, body)


@dataclass(frozen=True, slots=True)
class PictureLossIndication:
    """PLI (RFC 4585 §6.3.1): PT 206, FMT 1, no FCI."""

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        if len(body) < 8:
            raise MalformedPacketError(f"RTCP PLI body of {len(body)} bytes is shorter than its two SSRCs")
        sender, media = _TWO_SSRC.unpack_from(body)
        return cls(sender, media)

    def serialize(self) -> bytes:
        return _header(FMT_PLI, PSFB, _TWO_SSRC.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(frozen=True, slots=True)
class FullIntraRequest:
    """FIR (RFC 5104 §4.3.1): PT 206, FMT 4; one (media SSRC, command sequence number) per FCI entry.

    The header's media source SSRC is unused and written as 0 (§4.3.1.2)."""

    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    @classmethod
    def _decode(cls, count: int, body: bytes) -> Self:
        if len(body) < 8 or len(body) % 8:
            raise MalformedPacketError(
                f"RTCP FIR body of {len(body)} bytes is not two SSRCs and whole 8-byte FCI entries"
            )
        (sender,) = _SSRC.unpack_from(body)
        entries = tuple(_FIR_ENTRY.unpack_from(body, pos) for pos in range(8, len(body), 8))
        return cls(sender, entries)

    def serialize(self) -> bytes:
        body = _TWO_SSRC.pack(self.sender_ssrc, 0)
        for ssrc, seq in self.entries:
            if not 0 <= seq <= 255:
                raise ValueError(f"RTCP FIR sequence number {seq} is not 0..255")
            body += _FIR_ENTRY.pack(ssrc, seq)
        return _header(FMT_FIR, PSFB, body)


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other RTCP packet, kept as its type, count/FMT field and body (padding removed)."""

    packet_type: int
    count: int
    body: bytes = field(repr=False)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        return _parse_single(data, cls)

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, self.body)


RtcpPacket = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Goodbye
    | PictureLossIndication
    | FullIntraRequest
    | UnknownRtcp
)


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Every packet of a compound (RFC 3550 §6.1) or reduced-size (RFC 5506) RTCP packet.

    The first packet need not be an SR or RR. Raises MalformedPacketError on a bad version, a length
    running past the datagram, bad padding or a truncated known packet.
    """
    size = len(data)
    if size < RTCP_HEADER_SIZE:
        raise MalformedPacketError(f"RTCP packet of {size} bytes is shorter than its 4-byte header")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < size:
        if pos + RTCP_HEADER_SIZE > size:
            raise MalformedPacketError(
                f"RTCP compound packet has {size - pos} trailing bytes, too few for a header"
            )
        b0, packet_type, words = _COMMON.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise MalformedPacketError(f"RTCP packet has version {b0 >> 6}, expected 2")
        end = pos + RTCP_HEADER_SIZE + 4 * words
        if end > size:
            raise MalformedPacketError(
                f"RTCP packet type {packet_type} of {words} words runs past the {size}-byte datagram"
            )
        body = data[pos + RTCP_HEADER_SIZE : end]
        if b0 & 0x20:  # RFC 3550 §6.4.1: the last octet counts the padding, itself included
            padding = body[-1] if body else 0
            if padding == 0 or padding > len(body):
                raise MalformedPacketError(
                    f"RTCP packet type {packet_type} has invalid padding size {padding}"
                )
            body = body[:-padding]
        packets.append(_decode(b0 & 0x1F, packet_type, body))
        pos = end
    return packets


def _decode(count: int, packet_type: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        return SenderReport._decode(count, body)
    if packet_type == RR:
        return ReceiverReport._decode(count, body)
    if packet_type == SDES:
        return SourceDescription._decode(count, body)
    if packet_type == BYE:
        return Goodbye._decode(count, body)
    if packet_type == PSFB and count == FMT_PLI:
        return PictureLossIndication._decode(count, body)
    if packet_type == PSFB and count == FMT_FIR:
        return FullIntraRequest._decode(count, body)
    return UnknownRtcp(packet_type, count, body)


def _parse_single(data: bytes, cls: type[_P]) -> _P:
    packets = parse_rtcp(data)
    if len(packets) != 1 or not isinstance(packets[0], cls):
        found = ", ".join(type(p).__name__ for p in packets)
        raise MalformedPacketError(f"expected one RTCP {cls.__name__}, found {found}")
    return packets[0]


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """A reduced-size (RFC 5506) PLI asking `media_ssrc` for a keyframe."""
    return PictureLossIndication(sender_ssrc, media_ssrc).serialize()


def build_fir(sender_ssrc: int, media_ssrc: int, seq: int) -> bytes:
    """A reduced-size (RFC 5506) FIR; `seq` is taken modulo 256 (RFC 5104 §4.3.1.1)."""
    return FullIntraRequest(sender_ssrc, ((media_ssrc, seq & 0xFF),)).serialize()


def build_receiver_report(
    sender_ssrc: int, reports: Iterable[ReportBlock] = (), cname: bytes | None = None
) -> bytes:
    """An RR, followed by an SDES CNAME chunk when `cname` is given (a full RFC 3550 §6.1 compound)."""
    packet = ReceiverReport(sender_ssrc, tuple(reports)).serialize()
    if cname is not None:
        packet += SourceDescription((SdesChunk(sender_ssrc, ((SDES_CNAME, cname),)),)).serialize()
    return packet
