"""recorder/rtp/rtx.py: NACKs for lost packets (RFC 4585 §6.2.1) and RTX unwrapping (RFC 4588 §4)."""

from __future__ import annotations

import pytest

from recorder.rtp.packet import RtpPacket
from recorder.rtp.rtx import RtxRepair, build_nack, parse_nack, unwrap

MEDIA_PT, RTX_PT, SSRC, RTX_SSRC = 101, 102, 0x1111, 0x2222


def rtx_of(original: RtpPacket, rtx_seq: int, ssrc: int = RTX_SSRC) -> RtpPacket:
    """What a sender retransmits (RFC 4588 §4): its own sequence number, the OSN before the payload."""
    osn = original.sequence_number.to_bytes(2, "big")
    return RtpPacket(RTX_PT, rtx_seq, original.timestamp, ssrc, osn + original.payload, original.marker)


def test_nack_packs_runs_into_pid_and_bitmask_rfc4585_6_2_1() -> None:
    data = build_nack(7, SSRC, [10, 11, 26, 27, 65535, 0])
    assert data[:2] == bytes([0x81, 205])
    assert parse_nack(data) == (7, SSRC, [10, 11, 26, 27, 65535, 0])
    # 10 covers 11..26; 27 starts a new entry; 65535 a third that covers 0 across the wrap.
    assert len(data) == 12 + 3 * 4


def test_nack_is_bounded_and_parse_refuses_other_packets() -> None:
    assert len(build_nack(1, 2, list(range(0, 2000, 20)))) == 12 + 64 * 4
    with pytest.raises(ValueError, match="not an RTCP generic NACK"):
        parse_nack(bytes([0x81, 206, 0, 2]) + bytes(8))


def test_unwrap_gives_back_the_original_packet_rfc4588_4() -> None:
    original = RtpPacket(MEDIA_PT, 4242, 90000, SSRC, b"\x10frame", marker=True)
    got = unwrap(rtx_of(original, 7), MEDIA_PT, SSRC)
    assert got is not None and got.serialize() == original.serialize()
    assert unwrap(RtpPacket(RTX_PT, 8, 0, RTX_SSRC, b"\x00"), MEDIA_PT, SSRC) is None  # no OSN


def test_a_gap_is_nacked_at_once_then_again_while_missing() -> None:
    repair = RtxRepair(MEDIA_PT, RTX_PT, RTX_SSRC, retry_interval=0.02, max_retries=3)
    assert repair.media(100, SSRC, 0.0) == []
    assert repair.media(103, SSRC, 0.001) == [101, 102]
    assert repair.media(104, SSRC, 0.010) == []  # asked 9 ms ago
    assert repair.media(105, SSRC, 0.030) == [101, 102]
    assert repair.media(102, SSRC, 0.031) == []  # reordered: it came after all
    assert repair.media(106, SSRC, 0.060) == [101]
    assert repair.media(107, SSRC, 0.090) == []  # asked three times: given up
    assert repair.nacks_sent == 3


def test_repaired_packets_are_used_once_and_only_if_asked_for() -> None:
    repair = RtxRepair(MEDIA_PT, RTX_PT, RTX_SSRC)
    sent = [RtpPacket(MEDIA_PT, 65534 + i & 0xFFFF, 3000 * i, SSRC, bytes([i])) for i in range(4)]
    repair.media(sent[0].sequence_number, SSRC, 0.0)
    assert repair.media(sent[3].sequence_number, SSRC, 0.01) == [65535, 0]  # across the wrap
    got = repair.rtx(rtx_of(sent[2], 1))
    assert got is not None and got.serialize() == sent[2].serialize()
    assert repair.rtx(rtx_of(sent[2], 2)) is None  # a second retransmission: never twice
    assert repair.rtx(rtx_of(sent[3], 3)) is None  # arrived already, never asked for
    assert repair.rtx(rtx_of(sent[1], 4, ssrc=0x3333)) is None  # not the announced RTX SSRC
    assert repair.repaired == 1 and repair.unsolicited == 3


def test_a_pause_or_a_jump_asks_for_nothing() -> None:
    repair = RtxRepair(MEDIA_PT, RTX_PT, None, max_gap=100)
    repair.media(10, SSRC, 0.0)
    assert repair.media(500, SSRC, 0.01) == []  # a jump (a new encoder, a restart), not a loss
    assert repair.media(502, SSRC, 0.02) == [501]
    repair.forget()  # paused: what was sent meanwhile is not wanted
    assert repair.media(900, SSRC, 1.0) == []
    lost = RtpPacket(MEDIA_PT, 501, 0, SSRC, b"x")
    assert repair.rtx(rtx_of(lost, 1)) is None
    assert repair.media(902, SSRC, 1.01) == [901]
    assert repair.media(5, 0x9999, 1.02) == []  # a new sender SSRC starts over
