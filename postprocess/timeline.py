"""One wall-clock timeline for every track of a recording, from the timing recorded at ingest.

A track's frames carry their media time (pts / clock rate, 0 at the track's first frame). Where that media
time sits on the wall clock comes from the recording, never from where the files start:

- arrival: the track's first frame arrived at `first_wallclock`, so media time m is at first_wallclock + m;
- RTCP sender reports refine it: each SR pairs the sender's NTP time with a point of the track timeline.
  A line fitted through them gives the sender's clock rate (RTP clock drift over a long call) and where
  media time 0 is on the sender's clock. All tracks of one participant share the sender's clock, so their
  relative position (lip sync) comes from the SRs; the sender-to-recorder clock offset is the smallest
  arrival delay among that participant's tracks (the first frame that arrived fastest).
- SRs that contradict arrival (their implied A/V offset differs from the arrival one by more than
  `SR_TOLERANCE`) are not trusted for the position, only for the rate: some senders stamp SRs badly.
- A sender restart re-anchors the track timeline on arrival (recorder.assembly.pipeline), so from a
  restart on the track follows arrival again.

Pure: no files, no media; the input is what TrackSummary holds.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
SR_TOLERANCE = 0.3  # seconds: SR-implied and arrival-implied A/V offsets may differ this much
MIN_RATE_SPAN = 10.0  # seconds of media between the first and last SR before the rate is fitted
MAX_DRIFT = 1e-3  # a fitted rate further than this from nominal (1000 ppm) is not believed


def ntp_to_unix(ntp: int) -> float:
    """A 64-bit NTP timestamp (RFC 3550) as Unix seconds."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / 4_294_967_296


@dataclass(frozen=True, slots=True)
class TrackTiming:
    """What the timeline needs of one track (from its TrackSummary)."""

    name: str
    participant: str
    clock_rate: int
    first_wallclock: float
    sender_reports: Sequence[tuple[int, int]] = ()
    """(NTP 64-bit, pts on the track timeline in clock-rate units)."""
    restarts: Sequence[float] = ()
    """Wall-clock times at which the sender restarted (gaps with reason 'restart', their end)."""


@dataclass(frozen=True, slots=True)
class ClockPiece:
    start: float  # media seconds where this piece begins
    offset: float  # wall-clock seconds of `start`
    scale: float  # wall seconds per media second


@dataclass(frozen=True, slots=True)
class TrackClock:
    """Media time of one track -> wall clock (Unix seconds), piecewise linear."""

    pieces: tuple[ClockPiece, ...]
    source: str = "arrival"  # 'arrival' or 'rtcp'
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(p.start for p in self.pieces))

    def wall(self, media: float) -> float:
        i = max(0, bisect.bisect_right(self._starts, media) - 1)
        p = self.pieces[i]
        return p.offset + (media - p.start) * p.scale

    def media(self, wall: float) -> float:
        """Inverse of `wall` (media time shown at a wall-clock time)."""
        for p in reversed(self.pieces):
            if wall >= p.offset or p is self.pieces[0]:
                return p.start + (wall - p.offset) / p.scale
        raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class SenderFit:
    offset: float  # sender-clock Unix seconds of media time 0
    scale: float  # sender seconds per media second
    reports: int


def sender_fit(timing: TrackTiming) -> SenderFit | None:
    """The sender's clock as a line through the track's SRs (before any restart), or None without SRs."""
    limit = float("inf")
    if timing.restarts:
        limit = min(timing.restarts) - timing.first_wallclock
    points = [
        (pts / timing.clock_rate, ntp_to_unix(ntp))
        for ntp, pts in timing.sender_reports
        if pts / timing.clock_rate < limit
    ]
    if not points:
        return None
    scale = 1.0
    media = [m for m, _ in points]
    if len(points) >= 2 and max(media) - min(media) >= MIN_RATE_SPAN:
        mean_m = statistics.fmean(media)
        mean_w = statistics.fmean(w for _, w in points)
        var = sum((m - mean_m) ** 2 for m in media)
        slope = sum((m - mean_m) * (w - mean_w) for m, w in points) / var
        if abs(slope - 1.0) <= MAX_DRIFT:
            scale = slope
    offset = statistics.median(w - scale * m for m, w in points)
    return SenderFit(offset, scale, len(points))


def _with_restarts(timing: TrackTiming, first: ClockPiece, source: str) -> TrackClock:
    """The clock, with one piece per sender restart: after a restart the timeline follows arrival."""
    shift = first.offset - timing.first_wallclock  # keep the participant's alignment after restarts
    pieces = [first]
    for restart in sorted(timing.restarts):
        start = restart - timing.first_wallclock
        if start > pieces[-1].start:
            pieces.append(ClockPiece(start, restart + shift, 1.0))
    return TrackClock(tuple(pieces), source)


def track_clocks(timings: Sequence[TrackTiming]) -> tuple[dict[str, TrackClock], list[str]]:
    """Every track's clock, and a warning for each participant whose SRs were not believed."""
    clocks: dict[str, TrackClock] = {}
    warnings: list[str] = []
    by_participant: dict[str, list[TrackTiming]] = {}
    for t in timings:
        by_participant.setdefault(t.participant, []).append(t)
    for participant, tracks in by_participant.items():
        fits = {t.name: f for t in tracks if (f := sender_fit(t)) is not None}
        delays = {t.name: t.first_wallclock - fits[t.name].offset for t in tracks if t.name in fits}
        trusted = bool(delays) and max(delays.values()) - min(delays.values()) <= SR_TOLERANCE
        if delays and not trusted:
            warnings.append(
                f"participant {participant or '(unnamed)'}: RTCP sender reports disagree with arrival by "
                f"{max(delays.values()) - min(delays.values()):.3f} s; synchronised by arrival times"
            )
        common = min(delays.values()) if trusted else 0.0
        for t in tracks:
            fit_ = fits.get(t.name)
            if fit_ is not None and trusted:
                first = ClockPiece(0.0, fit_.offset + common, fit_.scale)
                clocks[t.name] = _with_restarts(t, first, "rtcp")
            else:
                scale = fit_.scale if fit_ is not None else 1.0
                clocks[t.name] = _with_restarts(t, ClockPiece(0.0, t.first_wallclock, scale), "arrival")
    return clocks, warnings
