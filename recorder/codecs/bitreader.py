"""A big-endian bit reader with exp-Golomb codes, for keyframe headers (VP9, H.264 SPS)."""

from __future__ import annotations

from recorder.errors import MalformedPacketError


class BitReader:
    __slots__ = ("_data", "_pos", "_size")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._size = len(data) * 8

    def bit(self) -> int:
        if self._pos >= self._size:
            raise MalformedPacketError("bitstream header is truncated")
        value = (self._data[self._pos >> 3] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        """Unsigned exp-Golomb (H.264 §9.1)."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise MalformedPacketError("exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)
