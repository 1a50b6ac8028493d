"""Wraparound arithmetic for RTP's 16-bit sequence numbers and 32-bit timestamps (RFC 3550 §A.1)."""

from __future__ import annotations


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number `a` is newer than `b` (RFC 1982 serial number arithmetic).

    At exactly half the range apart neither is newer, matching `SeqUnwrapper`, which reads such a
    value as the older one."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class _Unwrapper:
    """Extends an N-bit counter to an unbounded int. Each value is placed at its nearest distance
    (under half the range) from the highest value seen, so a value slightly older than the highest
    one across the wrap maps below it; values before the first one may map below zero."""

    __slots__ = ("_half", "_last", "_mask", "_range")

    def __init__(self, bits: int) -> None:
        self._range = 1 << bits
        self._mask = self._range - 1
        self._half = self._range >> 1
        self._last: int | None = None

    def unwrap(self, value: int) -> int:
        """The extended value of `value`; the highest seen advances only when `value` is newer."""
        last = self._last
        if last is None:
            self._last = value
            return value
        delta = (value - last) & self._mask
        if delta >= self._half:
            delta -= self._range
        extended = last + delta
        if delta > 0:
            self._last = extended
        return extended


class SeqUnwrapper(_Unwrapper):
    """16-bit RTP sequence numbers -> extended sequence numbers."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(16)


class TimestampUnwrapper(_Unwrapper):
    """32-bit RTP timestamps -> extended timestamps."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(32)
