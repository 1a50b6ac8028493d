"""The RTCP a recorder needs: SR, RR, SDES, BYE (RFC 3550 §6), PLI and FIR (RFC 4585 §6.3.1,
RFC 5104 §4.3.1), compound and reduced-size packets (RFC 5506), RTP/RTCP demultiplexing (RFC 5761).
Other packet types are kept as `UnknownRtcp` so a compound packet never fails because of them."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from recorder.errors import MalformedPacketError

SR, RR, SDES, BYE, RTPFB, PSFB = 200, 201, 202, 203, 205, 206
FMT_PLI, FMT_FIR = 1, 4
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_COMMON = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IB3sIIII")


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: packet type 192..223 in the second byte means RTCP."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def unix_to_ntp(t: float) -> int:
    seconds = int(t) + NTP_EPOCH_OFFSET
    fraction = int((t - int(t)) * (1 << 32)) & 0xFFFFFFFF
    return (seconds << 32) | fraction


@dataclass(frozen=True, slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int  # cumulative, signed 24-bit
    highest_sequence: int
    jitter: int
    last_sr: int
    delay_since_last_sr: int

    def serialize(self) -> bytes:
        return _REPORT_BLOCK.pack(
            self.ssrc,
            self.fraction_lost,
            (self.packets_lost & 0xFFFFFF).to_bytes(3, "big"),
            self.highest_sequence,
            self.jitter,
            self.last_sr,
            self.delay_since_last_sr,
        )

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, fraction, lost, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        packets_lost = int.from_bytes(lost, "big", signed=True)
        return cls(ssrc, fraction, packets_lost, highest, jitter, lsr, dlsr)


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack(
            "!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        return _wrap(len(self.reports), SR, body + b"".join(r.serialize() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _wrap(len(self.reports), RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[tuple[int, bytes], ...]  # (item type, value), e.g. (1, b"cname")


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]

    def serialize(self) -> bytes:
        body = b""
        for chunk in self.chunks:
            part = struct.pack("!I", chunk.ssrc)
            for kind, value in chunk.items:
                part += bytes([kind, len(value)]) + value
            part += b"\x00"  # end of items
            part += b"\x00" * (-len(part) % 4)
            body += part
        return _wrap(len(self.chunks), SDES, body)


@dataclass(frozen=True, slots=True)
class Goodbye:
    sources: tuple[int, ...]
    reason: bytes = b""

    def serialize(self) -> bytes:
        body = b"".join(struct.pack("!I", s) for s in self.sources)
        if self.reason:
            body += bytes([len(self.reason)]) + self.reason
            body += b"\x00" * (-len(body) % 4)
        return _wrap(len(self.sources), BYE, body)


@dataclass(frozen=True, slots=True)
class PictureLossIndication:
    sender_ssrc: int
    media_ssrc: int

    def serialize(self) -> bytes:
        return _wrap(FMT_PLI, PSFB, struct.pack("!II", self.sender_ssrc, self.media_ssrc))


@dataclass(frozen=True, slots=True)
class FullIntraRequest:
    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]  # (media ssrc, command sequence number)

    def serialize(self) -> bytes:
        body = struct.pack("!II", self.sender_ssrc, 0)  # media source SSRC is 0 for FIR (RFC 5104 §4.3.1.2)
        body += b"".join(struct.pack("!IB3x", ssrc, seq & 0xFF) for ssrc, seq in self.entries)
        return _wrap(FMT_FIR, PSFB, body)


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    packet_type: int
    count: int
    body: bytes = field(repr=False)

    def serialize(self) -> bytes:
        return _wrap(self.count, self.packet_type, self.body)


RtcpPacket = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Goodbye
    | PictureLossIndication
    | FullIntraRequest
    | UnknownRtcp
)


def _wrap(count: int, packet_type: int, body: bytes) -> bytes:
    if len(body) % 4:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return _COMMON.pack(0x80 | count, packet_type, len(body) // 4) + body


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Every packet of a compound (or reduced-size) RTCP packet."""
    packets: list[RtcpPacket] = []
    pos, size = 0, len(data)
    if size < 4:
        raise MalformedPacketError(f"RTCP packet of {size} bytes is shorter than its 4-byte header")
    while pos < size:
        if pos + 4 > size:
            raise MalformedPacketError("RTCP compound packet has a truncated header")
        b0, packet_type, words = _COMMON.unpack_from(data, pos)
        if b0 >> 6 != 2:
            raise MalformedPacketError(f"RTCP packet has version {b0 >> 6}, expected 2")
        end = pos + 4 + 4 * words
        if end > size:
            raise MalformedPacketError(f"RTCP packet length {words} words runs past the datagram")
        body = data[pos + 4 : end]
        if b0 & 0x20:  # padding, only legal on the last packet
            if not body or body[-1] == 0 or body[-1] > len(body):
                raise MalformedPacketError("RTCP packet has invalid padding")
            body = body[: -body[-1]]
        packets.append(_parse_one(b0 & 0x1F, packet_type, body))
        pos = end
    return packets


def _parse_one(count: int, packet_type: int, body: bytes) -> RtcpPacket:
    try:
        if packet_type == SR:
            ssrc, ntp, rtp, pkts, octets = struct.unpack_from("!IQIII", body)
            return SenderReport(ssrc, ntp, rtp, pkts, octets, _blocks(body, 24, count))
        if packet_type == RR:
            (ssrc,) = struct.unpack_from("!I", body)
            return ReceiverReport(ssrc, _blocks(body, 4, count))
        if packet_type == SDES:
            return SourceDescription(_sdes_chunks(body, count))
        if packet_type == BYE:
            sources = struct.unpack_from(f"!{count}I", body)
            reason = b""
            if len(body) > 4 * count:
                length = body[4 * count]
                reason = body[4 * count + 1 : 4 * count + 1 + length]
                if len(reason) != length:
                    raise MalformedPacketError("RTCP BYE reason runs past the packet")
            return Goodbye(sources, reason)
        if packet_type == PSFB and count == FMT_PLI:
            sender, media = struct.unpack_from("!II", body)
            return PictureLossIndication(sender, media)
        if packet_type == PSFB and count == FMT_FIR:
            (sender,) = struct.unpack_from("!I", body)
            if (len(body) - 8) % 8:
                raise MalformedPacketError("RTCP FIR has a truncated FCI entry")
            entries = tuple(
                (ssrc, seq)
                for ssrc, seq in (struct.unpack_from("!IB", body, i) for i in range(8, len(body), 8))
            )
            return FullIntraRequest(sender, entries)
    except struct.error:
        raise MalformedPacketError(f"RTCP packet type {packet_type} is truncated") from None
    return UnknownRtcp(packet_type, count, body)


def _blocks(body: bytes, pos: int, count: int) -> tuple[ReportBlock, ...]:
    if pos + 24 * count > len(body):
        raise MalformedPacketError(f"RTCP report has {count} report blocks but room for fewer")
    return tuple(ReportBlock.parse(body, pos + 24 * i) for i in range(count))


def _sdes_chunks(body: bytes, count: int) -> tuple[SdesChunk, ...]:
    chunks = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise MalformedPacketError("RTCP SDES chunk is truncated")
        (ssrc,) = struct.unpack_from("!I", body, pos)
        pos += 4
        items = []
        while True:
            if pos >= len(body):
                raise MalformedPacketError("RTCP SDES chunk has no end marker")
            kind = body[pos]
            if kind == 0:
                pos += 1
                break
            if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                raise MalformedPacketError("RTCP SDES item runs past the packet")
            length = body[pos + 1]
            items.append((kind, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        pos += -pos % 4
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return tuple(chunks)


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return PictureLossIndication(sender_ssrc, media_ssrc).serialize()


def build_fir(sender_ssrc: int, media_ssrc: int, seq: int) -> bytes:
    return FullIntraRequest(sender_ssrc, ((media_ssrc, seq),)).serialize()
