"""Sequence number and timestamp wraparound (RFC 3550 §A.1 extended sequence numbers, RFC 1982 serial
number arithmetic)."""

from __future__ import annotations

import random

import pytest

from recorder.rtp.seqnum import SeqUnwrapper, TimestampUnwrapper, seq_newer

T = 2**32


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [
        (1, 0, True),
        (0, 1, False),
        (5, 5, False),
        (0, 65535, True),  # across the wrap
        (65535, 0, False),
        (1, 65535, True),
        (0x7FFF, 0, True),  # just under half the range
        (0x8000, 0, False),  # exactly half: neither is newer
        (0, 0x8000, False),
        (0x8001, 0, False),  # over half: b is newer
    ],
)
def test_seq_newer_rfc1982(a: int, b: int, newer: bool) -> None:
    assert seq_newer(a, b) is newer


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([1, 2, 3], [1, 2, 3], id="in-order"),
        pytest.param([65534, 65535, 0, 1], [65534, 65535, 65536, 65537], id="65535-to-0"),
        pytest.param([65535, 1, 0, 2], [65535, 65537, 65536, 65538], id="reorder-across-wrap"),
        pytest.param(
            [65534, 0, 65535, 1], [65534, 65536, 65535, 65537], id="old-packet-across-wrap-maps-below"
        ),
        pytest.param([10, 9, 11], [10, 9, 11], id="reorder"),
        pytest.param([0, 65535], [0, -1], id="older-than-the-first"),
        pytest.param([100, 100, 101], [100, 100, 101], id="duplicate"),
        pytest.param([0, 30000, 60000, 24464, 0], [0, 30000, 60000, 90000, 65536], id="big-steps-cycle"),
        pytest.param([0, 0x8000], [0, -0x8000], id="half-range-is-older"),
        pytest.param(
            [65000, 500, 65500, 1000],
            [65000, 66036, 65500, 66536],
            id="late-packet-does-not-move-the-highest",
        ),
    ],
)
def test_sequence_unwrap_rfc3550_a1(values: list[int], expected: list[int]) -> None:
    unwrapper = SeqUnwrapper()
    assert [unwrapper.unwrap(v) for v in values] == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([T - 6000, T - 3000, 0, 3000], [T - 6000, T - 3000, T, T + 3000], id="2^32-wrap"),
        pytest.param(
            [T - 3000, 3000, T - 1500, 0], [T - 3000, T + 3000, T - 1500, T], id="reorder-across-wrap"
        ),
        pytest.param([90000, 87000, 93000], [90000, 87000, 93000], id="b-frame-like-reorder"),
        pytest.param([0, T - 1], [0, -1], id="older-than-the-first"),
        pytest.param([0, 2**31 - 1, 2**31 + 10], [0, 2**31 - 1, 2**31 + 10], id="under-half-steps"),
    ],
)
def test_timestamp_unwrap_rfc3550_5_1(values: list[int], expected: list[int]) -> None:
    unwrapper = TimestampUnwrapper()
    assert [unwrapper.unwrap(v) for v in values] == expected


def test_many_wraps_stay_monotonic_and_consistent() -> None:
    rng = random.Random(11)
    unwrapper = SeqUnwrapper()
    true_seq = 60000
    for _ in range(200_000 // 50):
        window = list(range(true_seq, true_seq + 50))
        head = window[:5]
        rng.shuffle(head)  # mild reordering
        window[:5] = head
        for s in window:
            assert unwrapper.unwrap(s & 0xFFFF) == s
        true_seq += 50
    assert true_seq > 3 * 65536
