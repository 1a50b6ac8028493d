"""Clocks from RTCP sender reports (RFC 3550 §6.4.1). Pure.

A sender report pairs the sender's wall clock (NTP) with the RTP timestamp of the same instant. The track
summaries keep one pair every few seconds, the RTP side mapped onto the track's timeline (`pts`, clock
units from the track's first frame); the recording places a track's media at first_wallclock + pts/clock.

- sender clock drift: how fast the sender's RTP clock runs against its own wall clock, in parts per million
  (least-squares slope over every report), and the accumulated difference in milliseconds over the call;
- A/V sync: for one participant, how much later the recording places video than the audio the sender
  captured at the same instant: lag = placement - sender NTP time per track, offset = lag(video) -
  lag(audio) at the audio's report times (video lag interpolated). Positive: video behind audio; lip sync
  is usually judged fine within -125 ms (video ahead) to +45 ms (ITU-R BT.1359).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def ntp_seconds(ntp64: int) -> float:
    """A 64-bit NTP timestamp as Unix seconds."""
    return (ntp64 >> 32) - NTP_UNIX_OFFSET + (ntp64 & 0xFFFFFFFF) / 2**32


class Drift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ppm: float | None = Field(description="RTP clock rate error against the sender's wall clock (ppm).")
    times: list[float] = Field(default_factory=list, description="Sender wall clock of each report (Unix s).")
    offset_ms: list[float] = Field(
        default_factory=list, description="RTP clock minus wall clock since the first report (ms)."
    )


class SyncSeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    times: list[float] = Field(default_factory=list, description="Sender wall clock (Unix s).")
    offset_ms: list[float] = Field(default_factory=list, description="Video lag minus audio lag (ms).")


def clock_drift(reports: Sequence[tuple[int, int]], clock_rate: int) -> Drift:
    """Drift of the RTP clock against the sender's wall clock, from (NTP64, RTP/pts) report pairs."""
    if len(reports) < 2:
        return Drift(ppm=None)
    t = np.array([ntp_seconds(n) for n, _ in reports])
    m = np.array([r for _, r in reports], dtype=np.float64) / clock_rate
    dt, dm = t - t[0], m - m[0]
    ppm = None
    if dt[-1] - dt[0] >= 1.0:
        slope = float(np.polyfit(dt, dm, 1)[0])
        ppm = (slope - 1.0) * 1e6
    return Drift(ppm=ppm, times=t.tolist(), offset_ms=((dm - dt) * 1000).tolist())


def lag(
    reports: Sequence[tuple[int, int]], clock_rate: int, first_wallclock: float
) -> tuple[np.ndarray, np.ndarray]:
    """(sender NTP times, placement - NTP) of a track's reports."""
    t = np.array([ntp_seconds(n) for n, _ in reports])
    placed = first_wallclock + np.array([p for _, p in reports], dtype=np.float64) / clock_rate
    return t, placed - t


def av_offset(
    audio: Sequence[tuple[int, int]],
    audio_clock: int,
    audio_first: float,
    video: Sequence[tuple[int, int]],
    video_clock: int,
    video_first: float,
) -> SyncSeries:
    """The A/V offset of one participant over time (see the module documentation)."""
    if len(audio) < 1 or len(video) < 1:
        return SyncSeries()
    ta, la = lag(audio, audio_clock, audio_first)
    tv, lv = lag(video, video_clock, video_first)
    order = np.argsort(tv)
    tv, lv = tv[order], lv[order]
    if len(tv) == 1:
        inside = np.abs(ta - tv[0]) <= 10.0
        lv_at = np.full(len(ta), lv[0])
    else:
        inside = (ta >= tv[0] - 5.0) & (ta <= tv[-1] + 5.0)
        lv_at = np.interp(ta, tv, lv)
    return SyncSeries(times=ta[inside].tolist(), offset_ms=((lv_at - la)[inside] * 1000).tolist())
