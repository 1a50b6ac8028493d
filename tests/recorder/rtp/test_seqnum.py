"""Sequence number and timestamp unwrapping (RFC 3550 A.1)."""

from __future__ import annotations

import pytest

from recorder.rtp.seqnum import SeqUnwrapper, TimestampUnwrapper, seq_newer


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([65534, 65535, 0, 1], [65534, 65535, 65536, 65537]),
        ([65535, 1, 0, 2], [65535, 65537, 65536, 65538]),  # reordered across the wrap
        ([10, 9, 11], [10, 9, 11]),
        ([0, 65535], [0, -1]),  # one packet older than the first
    ],
)
def test_sequence_unwrap(values: list[int], expected: list[int]) -> None:
    u = SeqUnwrapper()
    assert [u.unwrap(v) for v in values] == expected


def test_timestamp_unwrap_across_2_to_the_32() -> None:
    u = TimestampUnwrapper()
    values = [2**32 - 6000, 2**32 - 3000, 0, 3000]
    assert [u.unwrap(v) for v in values] == [2**32 - 6000, 2**32 - 3000, 2**32, 2**32 + 3000]


def test_seq_newer() -> None:
    assert seq_newer(1, 65535) and not seq_newer(65535, 1) and not seq_newer(5, 5)
