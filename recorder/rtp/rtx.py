"""Retransmission on the leg from the SFU: NACKs for lost packets (RFC 4585 §6.2.1) and RTX unwrapping
(RFC 4588 §4). Pure: no sockets, no clock of its own; the receiver feeds it packets and the time and
sends the NACKs it returns.

A mediasoup Consumer keeps what it sent and retransmits on its RTX SSRC when asked. `RtxRepair` follows
the media stream's sequence numbers; each packet that arrives after a gap makes it return a NACK naming
the missing ones (asked again every `retry_interval` while packets keep coming, at most `max_retries`
times, never for packets older than `max_age` or a jump of more than `max_gap`). An RTX packet is turned
back into the original (OSN, media payload type and SSRC) only if its packet was asked for and has not
arrived since: a repaired packet is used once, and nothing the receiver did not ask for gets in (an
unsolicited or second retransmission is dropped and counted). `forget()` drops every open request (a
pause: the packets sent meanwhile must never be asked for).
"""

from __future__ import annotations

import struct

from recorder.rtp.packet import RtpPacket
from recorder.rtp.seqnum import SeqUnwrapper

RTPFB = 205
"""RTCP transport-layer feedback (RFC 4585 §6.1); FMT 1 is the generic NACK."""
NACK_FMT = 1
MAX_FCI = 64
"""NACK entries per RTCP packet (each covers 17 sequence numbers)."""


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: list[int]) -> bytes:
    """A generic NACK (RFC 4585 §6.2.1) for these 16-bit sequence numbers, oldest first: (PID, BLP)
    entries, each PID with the 16 sequence numbers after it as a bitmask; at most MAX_FCI entries."""
    fci: list[tuple[int, int]] = []
    for seq in dict.fromkeys(seqs):
        if fci:
            pid, blp = fci[-1]
            distance = (seq - pid) & 0xFFFF
            if 1 <= distance <= 16:
                fci[-1] = (pid, blp | 1 << (distance - 1))
                continue
        fci.append((seq & 0xFFFF, 0))
    fci = fci[:MAX_FCI]
    length = 2 + len(fci)  # 32-bit words minus one
    head = struct.pack("!BBHII", 0x80 | NACK_FMT, RTPFB, length, sender_ssrc, media_ssrc)
    return head + b"".join(struct.pack("!HH", pid, blp) for pid, blp in fci)


def parse_nack(data: bytes) -> tuple[int, int, list[int]]:
    """(sender SSRC, media SSRC, sequence numbers) of one generic NACK; ValueError if it is not one."""
    if len(data) < 12 or data[0] >> 6 != 2 or data[0] & 0x1F != NACK_FMT or data[1] != RTPFB:
        raise ValueError("not an RTCP generic NACK")
    length = (struct.unpack_from("!H", data, 2)[0] + 1) * 4
    if length > len(data) or length < 12:
        raise ValueError(f"RTCP NACK of {len(data)} bytes says it has {length}")
    sender, media = struct.unpack_from("!II", data, 4)
    seqs: list[int] = []
    for pos in range(12, length, 4):
        pid, blp = struct.unpack_from("!HH", data, pos)
        seqs.append(pid)
        seqs += [(pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1]
    return sender, media, seqs


def unwrap(packet: RtpPacket, payload_type: int, ssrc: int) -> RtpPacket | None:
    """The original packet an RTX packet carries (RFC 4588 §4: the 2-byte OSN, then the original
    payload), with the media payload type and SSRC; None for an RTX packet without an OSN (padding)."""
    payload = packet.payload
    if len(payload) < 2:
        return None
    return RtpPacket(
        payload_type=payload_type,
        sequence_number=payload[0] << 8 | payload[1],
        timestamp=packet.timestamp,
        ssrc=ssrc,
        payload=payload[2:],
        marker=packet.marker,
        csrc=packet.csrc,
        extension_profile=packet.extension_profile,
        extension_data=packet.extension_data,
    )


class RtxRepair:
    """NACKs for one media stream and the unwrapping of its RTX stream (see the module's docstring)."""

    __slots__ = (
        "_highest",
        "_missing",
        "_unwrapper",
        "max_age",
        "max_gap",
        "max_retries",
        "media_ssrc",
        "nacks_sent",
        "payload_type",
        "repaired",
        "retry_interval",
        "rtx_payload_type",
        "rtx_ssrc",
        "unsolicited",
    )

    def __init__(
        self,
        payload_type: int,
        rtx_payload_type: int,
        rtx_ssrc: int | None,
        *,
        retry_interval: float = 0.03,
        max_retries: int = 3,
        max_age: float = 0.5,
        max_gap: int = 256,
    ) -> None:
        self.payload_type = payload_type
        self.rtx_payload_type = rtx_payload_type
        self.rtx_ssrc = rtx_ssrc
        """The RTX SSRC announced (None: any SSRC with the RTX payload type)."""
        self.media_ssrc: int | None = None
        self.retry_interval = retry_interval
        self.max_retries = max_retries
        self.max_age = max_age
        self.max_gap = max_gap
        self.repaired = 0
        """Packets recovered from RTX and handed on."""
        self.unsolicited = 0
        """RTX packets dropped: not asked for, already arrived, or without an OSN."""
        self.nacks_sent = 0
        self._unwrapper = SeqUnwrapper()
        self._highest: int | None = None
        self._missing: dict[int, list[float]] = {}
        """extended seq -> [first missed at, last asked at, times asked]"""

    def media(self, seq: int, ssrc: int, now: float) -> list[int]:
        """A media packet arrived: the sequence numbers to NACK now (often none)."""
        if ssrc != self.media_ssrc:  # a new sender: nothing of the old one is asked for
            self.forget()
            self.media_ssrc = ssrc
        ext = self._unwrapper.unwrap(seq)
        highest = self._highest
        missing = self._missing
        if highest is None:
            self._highest = ext
            return []
        if ext > highest + 1:
            if ext - highest > self.max_gap:
                missing.clear()  # a jump, not a loss: nothing sensible to ask for
            else:
                for lost in range(highest + 1, ext):
                    missing[lost] = [now, -1.0, 0.0]
        if ext > highest:
            self._highest = ext
        elif missing:
            missing.pop(ext, None)  # reordered, it came after all
        if not missing:
            return []
        return self._due(now)

    def _due(self, now: float) -> list[int]:
        due: list[int] = []
        for ext, state in list(self._missing.items()):
            first, last, tries = state
            if now - first > self.max_age or tries >= self.max_retries:
                del self._missing[ext]
            elif now - last >= self.retry_interval:
                state[1] = now
                state[2] = tries + 1
                due.append(ext & 0xFFFF)
        if due:
            self.nacks_sent += 1
        return due

    def rtx(self, packet: RtpPacket) -> RtpPacket | None:
        """An RTX packet: the original it carries if it was asked for and is still missing, else None."""
        if self.media_ssrc is None or (self.rtx_ssrc is not None and packet.ssrc != self.rtx_ssrc):
            self.unsolicited += 1
            return None
        original = unwrap(packet, self.payload_type, self.media_ssrc)
        if original is None or self._highest is None:
            self.unsolicited += 1
            return None
        ext = self._highest + ((original.sequence_number - self._highest) & 0xFFFF)
        if ext > self._highest:
            ext -= 0x10000
        if self._missing.pop(ext, None) is None:
            self.unsolicited += 1
            return None
        self.repaired += 1
        return original

    def forget(self) -> None:
        """Ask for nothing sent before now (a pause, a new sender)."""
        if self._highest is None:
            return
        self._missing.clear()
        self._highest = None
        self._unwrapper = SeqUnwrapper()
