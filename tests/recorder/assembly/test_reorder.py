"""The reorder buffer: every loss reported, bounded by packet count and by time (RFC 3550 A.1)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from recorder.assembly.reorder import Loss, ReorderBuffer


@dataclass(frozen=True)
class P:
    sequence_number: int


def run(seqs: list[int], max_packets: int = 8, max_delay: float = 10.0, drain: bool = True) -> list[object]:
    buf: ReorderBuffer[P] = ReorderBuffer(max_packets, max_delay)
    out: list[P | Loss] = []
    for i, s in enumerate(seqs):
        buf.push(P(s & 0xFFFF), i * 0.001, out)
    if drain:
        buf.drain(out)
    return [("loss", o.count, o.reset) if isinstance(o, Loss) else o.sequence_number for o in out]


@pytest.mark.parametrize(
    ("name", "sent", "expected"),
    [
        ("in order", [1, 2, 3], [1, 2, 3]),
        ("swap", [1, 3, 2, 4], [1, 2, 3, 4]),
        ("reversed run", [10, 14, 13, 12, 11], [10, 11, 12, 13, 14]),
        ("one lost", [1, 2, 4, 5], [1, 2, ("loss", 1, False), 4, 5]),
        ("duplicate buffered", [1, 3, 3, 2], [1, 2, 3]),
        ("duplicate released", [1, 2, 2, 3], [1, 2, 3]),
        (
            "late after give-up",
            [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 2],
            [1, ("loss", 1, False), *range(3, 13)],
        ),
        ("wraparound", [65534, 65535, 0, 1], [65534, 65535, 0, 1]),
        ("reorder across wrap", [65534, 0, 65535, 1], [65534, 65535, 0, 1]),
        ("loss across wrap", [65534, 1, 2], [65534, ("loss", 2, False), 1, 2]),
    ],
)
def test_release_order_and_loss(name: str, sent: list[int], expected: list[object]) -> None:
    assert run(sent) == expected, name


def test_packet_count_bound_gives_up_on_a_hole() -> None:
    # With room for 3 packets, the 4th buffered packet forces the hole at 2 to be declared lost.
    assert run([1, 3, 4, 5, 6], max_packets=3, drain=False) == [1, ("loss", 1, False), 3, 4, 5, 6]


def test_time_bound_gives_up_on_a_hole() -> None:
    buf: ReorderBuffer[P] = ReorderBuffer(max_packets=100, max_delay=0.1)
    out: list[P | Loss] = []
    buf.push(P(1), 0.0, out)
    buf.push(P(3), 0.01, out)
    buf.flush_due(0.05, out)
    assert [getattr(o, "sequence_number", o) for o in out] == [1]
    buf.flush_due(0.12, out)
    assert out[1] == Loss(first=2, count=1) and out[2] == P(3)
    assert buf.stats.lost == 1


def test_sender_restart_is_a_reset_not_a_loss() -> None:
    got = run([100, 101, 102, 40000, 40001])
    assert got == [100, 101, 102, ("loss", 0, True), 40000, 40001]


def test_restart_with_lower_sequence_needs_two_packets() -> None:
    # One stray old packet is dropped as late; two consecutive ones mean the sender restarted.
    got = run([5000, 5001, 10, 5002, 20, 21, 22])
    assert got == [5000, 5001, 5002, ("loss", 0, True), 20, 21, 22]


def test_stats_count_everything() -> None:
    buf: ReorderBuffer[P] = ReorderBuffer(8, 10.0)
    out: list[P | Loss] = []
    for i, s in enumerate([1, 2, 2, 4, 4, 5]):
        buf.push(P(s), i * 0.001, out)
    buf.drain(out)
    s = buf.stats
    assert (s.received, s.released, s.lost, s.duplicates, s.late) == (6, 4, 1, 1, 1)
