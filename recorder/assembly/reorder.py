"""A reorder buffer for one RTP stream, bounded by packet count and by time.

Pure logic: the caller passes packets with their arrival time and acts on what comes out. Out come, in
sequence order, the packets themselves and `Loss` markers for every hole that was given up on, so
nothing is lost silently. A `Loss` with `reset=True` marks a discontinuity (the sender restarted: a
sequence jump beyond what reordering explains), after which the sequence space starts afresh.

The common case (the next expected packet, nothing buffered) costs one unwrap and one comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from recorder.rtp.seqnum import SeqUnwrapper

# RFC 3550 appendix A.1: jumps larger than this are a restart, not loss.
MAX_DROPOUT = 3000
# A packet this far behind the expected one is not late but (possibly) a restarted sender.
MAX_MISORDER = 100


class SequencedPacket(Protocol):
    @property
    def sequence_number(self) -> int: ...


@dataclass(slots=True, frozen=True)
class Loss:
    """`count` packets starting at extended sequence number `first` will never be delivered."""

    first: int
    count: int
    reset: bool = False


@dataclass(slots=True)
class ReorderStats:
    received: int = 0
    released: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    resets: int = 0


P = TypeVar("P", bound=SequencedPacket)


class ReorderBuffer(Generic[P]):
    """Releases packets in sequence order, waiting at most `max_packets` packets or `max_delay` seconds
    for a missing one."""

    def __init__(
        self, max_packets: int = 128, max_delay: float = 0.15, stats: ReorderStats | None = None
    ) -> None:
        """`stats` carries counters over from a buffer this one replaces (after a pause)."""
        if max_packets < 1 or max_delay < 0:
            raise ValueError("reorder buffer needs max_packets >= 1 and max_delay >= 0")
        self.max_packets = max_packets
        self.max_delay = max_delay
        self.stats = stats if stats is not None else ReorderStats()
        self._unwrapper = SeqUnwrapper()
        self._next: int | None = None
        self._pending: dict[int, tuple[P, float]] = {}
        self._probation: tuple[int, P] | None = None  # (raw sequence number, packet)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def push(self, packet: P, now: float, out: list[P | Loss]) -> None:
        """Add one packet; append whatever can now be released to `out`."""
        stats = self.stats
        stats.received += 1
        seq = self._unwrapper.unwrap(packet.sequence_number)
        expected = self._next
        if seq == expected and not self._pending:
            self._next = seq + 1
            stats.released += 1
            out.append(packet)
            return
        if expected is None:
            self._next = seq + 1
            self.stats.released += 1
            out.append(packet)
            return
        if seq < expected:
            self._push_behind(packet, seq, expected, now, out)
            return
        if seq - expected > MAX_DROPOUT:
            self._restart(packet, out)
            return
        self._probation = None
        if seq in self._pending:
            self.stats.duplicates += 1
            return
        self._pending[seq] = (packet, now)
        self.stats.reordered += 1
        self._release(now, out)

    def flush_due(self, now: float, out: list[P | Loss]) -> None:
        """Give up on holes that have waited longer than `max_delay` (call this on a timer)."""
        if self._pending:
            self._release(now, out)

    def drain(self, out: list[P | Loss]) -> None:
        """Release everything buffered, reporting every remaining hole as loss (end of stream)."""
        while self._pending:
            self._skip_hole(out)
            self._release_run(out)

    def _push_behind(self, packet: P, seq: int, expected: int, now: float, out: list[P | Loss]) -> None:
        if expected - seq <= MAX_MISORDER:
            self.stats.late += 1  # already released past it, or a duplicate of a released packet
            return
        # Far behind: either a stray old packet or the sender restarted with a lower sequence number.
        # RFC 3550 A.1: accept the new sequence once two consecutive packets confirm it.
        probation = self._probation
        if probation is not None and packet.sequence_number == (probation[0] + 1) & 0xFFFF:
            self._restart(probation[1], out)
            self.push(packet, now, out)
            self.stats.received -= 1  # counted once already
            return
        self._probation = (packet.sequence_number, packet)
        self.stats.late += 1

    def _restart(self, packet: P, out: list[P | Loss]) -> None:
        self.drain(out)
        self.stats.resets += 1
        self._unwrapper = SeqUnwrapper()
        seq = self._unwrapper.unwrap(packet.sequence_number)
        out.append(Loss(first=seq, count=0, reset=True))
        self._next = seq + 1
        self._probation = None
        self.stats.released += 1
        out.append(packet)

    def _release(self, now: float, out: list[P | Loss]) -> None:
        """Release the in-order run, then give up on holes while a bound is exceeded. A hole's wait
        counts from the arrival of the first packet after it, the packet that revealed it."""
        self._release_run(out)
        pending = self._pending
        while pending and (
            len(pending) > self.max_packets or now - pending[min(pending)][1] >= self.max_delay
        ):
            self._skip_hole(out)
            self._release_run(out)

    def _release_run(self, out: list[P | Loss]) -> None:
        pending = self._pending
        nxt = self._next
        assert nxt is not None
        entry = pending.pop(nxt, None)
        while entry is not None:
            out.append(entry[0])
            self.stats.released += 1
            nxt += 1
            entry = pending.pop(nxt, None)
        self._next = nxt

    def _skip_hole(self, out: list[P | Loss]) -> None:
        nxt = self._next
        assert nxt is not None
        first_present = min(self._pending)
        count = first_present - nxt
        self.stats.lost += count
        out.append(Loss(first=nxt, count=count))
        self._next = first_present
