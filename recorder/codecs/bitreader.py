"""A big-endian bit reader with exp-Golomb codes, for the few header bits read on keyframes (VP9
uncompressed header, H.264 sequence parameter set). Hand it only the header bytes it needs."""

from __future__ import annotations

from recorder.errors import MalformedPacketError

MAX_EXP_GOLOMB_ZEROS = 31


class BitReader:
    """Reads bits most significant first. Running past the end raises MalformedPacketError."""

    __slots__ = ("_pos", "_size", "_value", "what")

    def __init__(self, data: bytes, what: str = "bitstream header") -> None:
        self._value = int.from_bytes(data, "big")
        self._size = len(data) * 8
        self._pos = 0
        self.what = what

    @property
    def bits_left(self) -> int:
        return self._size - self._pos

    def bits(self, n: int) -> int:
        """The next `n` bits as an unsigned integer."""
        left = self._size - self._pos - n
        if left < 0:
            raise MalformedPacketError(f"{self.what} is truncated")
        self._pos += n
        return (self._value >> left) & ((1 << n) - 1)

    def bit(self) -> int:
        return self.bits(1)

    def flag(self) -> bool:
        return self.bits(1) == 1

    def ue(self) -> int:
        """Unsigned exp-Golomb code ue(v) (H.264 §9.1)."""
        left = self._size - self._pos
        rest = self._value & ((1 << left) - 1)
        zeros = left - rest.bit_length()
        if zeros > MAX_EXP_GOLOMB_ZEROS:
            raise MalformedPacketError(f"{self.what} has an exp-Golomb code longer than 32 bits")
        if 2 * zeros + 1 > left:
            raise MalformedPacketError(f"{self.what} is truncated")
        self._pos += zeros
        return self.bits(zeros + 1) - 1

    def se(self) -> int:
        """Signed exp-Golomb code se(v) (H.264 §9.1.1)."""
        k = self.ue()
        return (k + 1) >> 1 if k & 1 else -(k >> 1)
