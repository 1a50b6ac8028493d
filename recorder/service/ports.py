"""UDP port pairs (RTP on an even port, RTCP on the next) for forwarded streams, from a fixed range
so firewalls, NetworkPolicies and hostPort mappings can name it."""

from __future__ import annotations

import socket


class PortRangeExhaustedError(RuntimeError):
    pass


class PortAllocator:
    def __init__(self, low: int, high: int, bind: str = "0.0.0.0") -> None:
        if low < 1024 or high > 65535 or high - low < 1:
            raise ValueError(f"RTP port range {low}-{high} must lie within 1024-65535 and hold a pair")
        self.low = low + (low & 1)
        self.high = high
        self.bind = bind
        self._used: set[int] = set()
        self._next = self.low

    @property
    def in_use(self) -> int:
        return len(self._used)

    def allocate(self) -> int:
        """An even port whose pair is free now (checked by binding both)."""
        span = (self.high - self.low + 1) // 2
        for _ in range(span):
            port = self._next
            self._next = port + 2 if port + 3 <= self.high else self.low
            if port in self._used or not self._free(port):
                continue
            self._used.add(port)
            return port
        raise PortRangeExhaustedError(f"no free RTP port pair left in {self.low}-{self.high}")

    def release(self, port: int) -> None:
        self._used.discard(port)

    def _free(self, port: int) -> bool:
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        try:
            for p in (port, port + 1):
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.bind((self.bind, p))
        except OSError:
            return False
        return True
