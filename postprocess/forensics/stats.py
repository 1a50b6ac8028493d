"""Network statistics of one RTP stream from its packets as received. Pure: samples in, numbers out.

- loss: RFC 3550 §6.4.1/A.3: expected = highest - lowest extended sequence number + 1, lost = expected -
  distinct packets received (duplicates are not counted twice, so loss is never negative);
- duplicates: packets whose sequence number was already received; reordered: packets that arrived after
  one with a higher sequence number (and were not duplicates);
- interarrival jitter: RFC 3550 §6.4.1 and A.8: for consecutive packets i, j in arrival order
  D = (Rj - Ri) - (Sj - Si) in RTP timestamp units, J += (|D| - J) / 16; shown in milliseconds;
- per time bin (arrival time): bitrate, packets lost (each hole placed at the arrival of the packet after
  it), loss percent, frame rate (distinct RTP timestamps), the jitter at the end of the bin;
- keyframes: arrival times of packets that start a keyframe (the caller says which do);
- pauses: a hole in the sequence numbers across a pause of the recording (the packets were dropped unread
  on purpose, and the capture holds none of them) is counted as paused, not lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_EVENTS = 2000


@dataclass(slots=True, frozen=True)
class RtpSample:
    """One RTP packet as received: arrival (Unix seconds), sequence number, RTP timestamp, marker, its size
    in bytes (header and payload) and whether it starts a keyframe."""

    arrival: float
    seq: int
    timestamp: int
    size: int
    marker: bool = False
    keyframe_start: bool = False


class LossEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: float = Field(description="Arrival (Unix seconds) of the first packet after the hole.")
    packets: int = Field(description="Packets missing in the hole.")
    first_seq: int = Field(description="Extended sequence number of the first missing packet.")


class StreamStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clock_rate: int
    packets: int = Field(description="Packets received, duplicates included.")
    distinct: int
    expected: int
    lost: int
    duplicates: int
    reordered: int
    loss_percent: float
    paused: int = Field(default=0, description="Packets missing across pauses (not losses).")
    jitter_ms: float = Field(description="RFC 3550 interarrival jitter after the last packet.")
    jitter_ms_max: float
    jitter_ms_mean: float
    first_arrival: float
    last_arrival: float
    bin_seconds: float
    bin_start: list[float] = Field(default_factory=list, description="Start of each bin (Unix seconds).")
    bitrate_kbps: list[float] = Field(default_factory=list)
    lost_per_bin: list[int] = Field(default_factory=list)
    loss_percent_per_bin: list[float] = Field(default_factory=list)
    fps: list[float] = Field(default_factory=list, description="Distinct RTP timestamps per second.")
    jitter_ms_per_bin: list[float] = Field(default_factory=list)
    keyframes: list[float] = Field(default_factory=list, description="Arrival times of keyframe starts.")
    loss_events: list[LossEvent] = Field(default_factory=list, description="Holes, the first MAX_EVENTS.")


def extend_sequence(seqs: Sequence[int]) -> np.ndarray:
    """Extended (unwrapped) sequence numbers, in arrival order, each relative to the highest seen so far
    (RFC 3550 A.1): a step forward of less than 2^15 is forward, anything else is a late packet."""
    out = np.empty(len(seqs), dtype=np.int64)
    highest = -1
    for i, seq in enumerate(seqs):
        if highest < 0:
            ext = seq
        else:
            delta = (seq - highest) & 0xFFFF
            ext = highest + delta if delta < 0x8000 else highest - (0x10000 - delta)
        out[i] = ext
        highest = max(highest, ext)
    return out


def interarrival_jitter(
    arrivals: np.ndarray, timestamps: Sequence[int] | np.ndarray, clock_rate: int
) -> np.ndarray:
    """RFC 3550 A.8 jitter after each packet (timestamp units), packets in arrival order."""
    n = len(arrivals)
    out = np.zeros(n)
    if n < 2:
        return out
    ts = np.asarray(timestamps, dtype=np.int64)
    steps = (np.diff(ts) + (1 << 31)) % (1 << 32) - (1 << 31)  # Sj - Si, signed 32-bit
    d = np.abs(np.diff(arrivals) * clock_rate - steps).tolist()
    j = 0.0
    values = [0.0]
    for x in d:
        j += (x - j) / 16.0
        values.append(j)
    out[:] = values
    return out


@dataclass(slots=True)
class Columns:
    """Packets as columns (arrival order): what a capture of an hour is read into without an object per
    packet."""

    arrival: np.ndarray  # float64 Unix seconds
    seq: np.ndarray  # int64, 16-bit sequence numbers
    timestamp: np.ndarray  # int64, 32-bit RTP timestamps
    size: np.ndarray  # float64 bytes
    keyframe: np.ndarray  # bool: starts a keyframe

    @classmethod
    def of(cls, samples: Sequence[RtpSample]) -> Columns:
        n = len(samples)
        return cls(
            arrival=np.fromiter((s.arrival for s in samples), dtype=np.float64, count=n),
            seq=np.fromiter((s.seq for s in samples), dtype=np.int64, count=n),
            timestamp=np.fromiter((s.timestamp for s in samples), dtype=np.int64, count=n),
            size=np.fromiter((s.size for s in samples), dtype=np.float64, count=n),
            keyframe=np.fromiter((s.keyframe_start for s in samples), dtype=bool, count=n),
        )


def analyze(
    samples: Sequence[RtpSample] | Columns,
    clock_rate: int,
    bin_seconds: float = 1.0,
    video: bool = True,
    pauses: Sequence[tuple[float, float]] = (),
) -> StreamStats:
    """Statistics of one stream (see the module documentation); `samples` in arrival order, `pauses`
    (start, end) in Unix seconds."""
    cols = samples if isinstance(samples, Columns) else Columns.of(samples)
    count = len(cols.arrival)
    if not count:
        raise ValueError("no packets")
    arrivals = cols.arrival
    ext = extend_sequence(cols.seq.tolist())
    order, first_index = np.unique(ext, return_index=True)
    distinct = len(order)
    duplicates = count - distinct
    is_first = np.zeros(count, dtype=bool)
    is_first[first_index] = True
    running_max = np.maximum.accumulate(ext)
    reordered = int(np.count_nonzero(is_first[1:] & (ext[1:] < running_max[:-1])))
    span = int(order[-1] - order[0] + 1)

    keep = is_first  # jitter and rates over distinct packets, in arrival order
    jitter = interarrival_jitter(arrivals[keep], cols.timestamp[keep], clock_rate) / clock_rate * 1000.0

    origin = math.floor(arrivals[0] / bin_seconds) * bin_seconds
    nbins = int((arrivals[-1] - origin) // bin_seconds) + 1
    bins = ((arrivals - origin) // bin_seconds).astype(np.int64)
    bitrate = np.bincount(bins, weights=cols.size, minlength=nbins) * 8 / bin_seconds / 1000
    received = np.bincount(bins[keep], minlength=nbins)

    holes = np.nonzero(np.diff(order) > 1)[0]
    lost_bins = np.zeros(nbins, dtype=np.int64)
    events: list[LossEvent] = []
    arrival_sorted = arrivals[first_index]  # arrival of each distinct sequence number, in `order`
    paused = 0
    for h in holes.tolist():
        missing = int(order[h + 1] - order[h] - 1)
        when = float(arrival_sorted[h + 1])
        before = float(arrival_sorted[h])
        if any(p_start < when and before < p_end for p_start, p_end in pauses):
            paused += missing
            continue
        lost_bins[min(nbins - 1, max(0, int((when - origin) // bin_seconds)))] += missing
        if len(events) < MAX_EVENTS:
            events.append(LossEvent(time=when, packets=missing, first_seq=int(order[h] + 1)))
    expected = span - paused
    lost = expected - distinct
    expected_bins = received + lost_bins
    loss_pct = np.where(expected_bins > 0, 100.0 * lost_bins / np.maximum(expected_bins, 1), 0.0)

    fps = np.zeros(nbins)
    if video:
        _, first_of_frame = np.unique(cols.timestamp, return_index=True)
        fps = np.bincount(bins[first_of_frame], minlength=nbins) / bin_seconds
    jitter_bins = np.zeros(nbins)
    kept_bins = bins[keep]
    if len(kept_bins):
        last_in_bin = np.full(nbins, -1, dtype=np.int64)
        last_in_bin[kept_bins] = np.arange(len(kept_bins))  # later packets overwrite earlier ones
        carried = np.maximum.accumulate(last_in_bin)
        jitter_bins = np.where(carried >= 0, jitter[np.maximum(carried, 0)], 0.0)
    return StreamStats(
        clock_rate=clock_rate,
        packets=count,
        distinct=distinct,
        expected=expected,
        lost=lost,
        duplicates=duplicates,
        reordered=reordered,
        loss_percent=100.0 * lost / expected if expected else 0.0,
        paused=paused,
        jitter_ms=float(jitter[-1]),
        jitter_ms_max=float(jitter.max()),
        jitter_ms_mean=float(jitter.mean()),
        first_arrival=float(arrivals[0]),
        last_arrival=float(arrivals[-1]),
        bin_seconds=bin_seconds,
        bin_start=(origin + np.arange(nbins) * bin_seconds).tolist(),
        bitrate_kbps=bitrate.tolist(),
        lost_per_bin=lost_bins.tolist(),
        loss_percent_per_bin=loss_pct.tolist(),
        fps=fps.tolist(),
        jitter_ms_per_bin=jitter_bins.tolist(),
        keyframes=arrivals[cols.keyframe][:MAX_EVENTS].tolist(),
        loss_events=events,
    )
