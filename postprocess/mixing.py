"""Audio: the mix of everyone without clipping, and who is speaking. Pure numpy, no files.

Participants' audio is summed in float32; a peak limiter then keeps every sample under `CEILING`. The
limiter looks one 10 ms block ahead (the gain at a block's start and end are both low enough for that
block), releases slowly, and is exact: a gain ramp between two values that each keep a block under the
ceiling keeps every sample of it under the ceiling. Quiet passages pass unchanged (gain 1).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
CHANNELS = 2
CEILING = 0.891  # -1 dBFS
BLOCK = 480  # 10 ms
RELEASE_PER_BLOCK = 0.02  # gain recovers by at most this much per 10 ms (about 0.5 s to full)
SILENCE_DB = -90.0

Samples = npt.NDArray[np.float32]


class Limiter:
    """Streaming peak limiter for (n, channels) float32 blocks; keeps its state across calls."""

    def __init__(self, ceiling: float = CEILING, block: int = BLOCK) -> None:
        self.ceiling = ceiling
        self.block = block
        self.gain = 1.0
        self._pending: Samples | None = None  # one block held back for look-ahead

    def process(self, samples: Samples) -> Samples:
        """Limit `samples` in place where possible; returns as many samples as it was given (the output is
        delayed by one block inside the stream; `flush` returns the rest)."""
        block = self.block
        if self._pending is not None:
            samples = np.concatenate([self._pending, samples])
        n_blocks = len(samples) // block
        held = len(samples) - (n_blocks - 1) * block if n_blocks else len(samples)
        if n_blocks <= 1:
            self._pending = samples.copy()
            return np.zeros((0, samples.shape[1]), np.float32)
        # Blocks 0..n_blocks-2 are output; the remainder (last full block and any partial) waits.
        body = samples[: len(samples) - held]
        ahead = samples[len(samples) - held :]
        self._pending = ahead.copy()
        out = self._limit(body, np.abs(ahead).max(initial=0.0))
        return out

    def flush(self) -> Samples:
        pending = self._pending
        self._pending = None
        if pending is None or len(pending) == 0:
            return np.zeros((0, CHANNELS), np.float32)
        return self._limit(pending, 0.0)

    def _limit(self, body: Samples, next_peak: float) -> Samples:
        block = self.block
        n = -(-len(body) // block)
        padded = n * block
        flat = np.abs(body).max(axis=1) if body.ndim == 2 else np.abs(body)
        if padded != len(flat):
            flat = np.concatenate([flat, np.zeros(padded - len(flat), flat.dtype)])
        peaks = flat.reshape(n, block).max(axis=1)
        peaks = np.append(peaks, next_peak)
        with np.errstate(divide="ignore"):
            need = np.minimum(1.0, self.ceiling / np.maximum(peaks, 1e-12))
        if need.min() >= 1.0 and self.gain >= 1.0:
            return body  # nothing to do: the common case
        gains = np.empty(n + 1, np.float64)
        g = self.gain
        gains[0] = g
        for k in range(n):
            g = min(need[k], need[k + 1], g + RELEASE_PER_BLOCK)
            gains[k + 1] = g
        self.gain = g
        # Gain ramps from gains[k] to gains[k+1] across block k.
        ramp = np.linspace(0.0, 1.0, block, endpoint=False, dtype=np.float64)
        env = (gains[:-1, None] + (gains[1:] - gains[:-1])[:, None] * ramp[None, :]).reshape(-1)[: len(body)]
        out = (body * env[:, None].astype(np.float32)) if body.ndim == 2 else body * env.astype(np.float32)
        np.clip(out, -self.ceiling, self.ceiling, out=out)
        return out


def level_db(samples: Samples) -> float:
    """RMS level in dBFS (SILENCE_DB for silence)."""
    if samples.size == 0:
        return SILENCE_DB
    flat = samples.reshape(-1)
    rms = float(np.sqrt(np.dot(flat, flat) / flat.size))
    return max(SILENCE_DB, 20.0 * np.log10(rms)) if rms > 0 else SILENCE_DB


class ActiveSpeaker:
    """Who is speaking, from audio levels over time, with hysteresis so the view does not flicker.

    Levels are smoothed (fast attack, slow decay); the loudest participant above `threshold_db` takes over
    when louder than the current speaker by `margin_db` and the current one has held the floor for `hold`
    seconds. Someone who leaves loses the floor at once.
    """

    def __init__(
        self, threshold_db: float = -50.0, margin_db: float = 3.0, hold: float = 1.5, decay: float = 0.9
    ) -> None:
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self.hold = hold
        self.decay = decay
        self.current: str | None = None
        self.since = float("-inf")
        self._smooth: dict[str, float] = {}

    def update(self, levels: Mapping[str, float], now: float) -> str | None:
        """`levels`: dBFS of every present participant for the instant `now` (seconds)."""
        smooth = self._smooth
        for pid, level in levels.items():
            prev = smooth.get(pid, SILENCE_DB)
            smooth[pid] = level if level > prev else prev * self.decay + level * (1 - self.decay)
        for pid in list(smooth):
            if pid not in levels:
                del smooth[pid]
        if self.current not in levels:
            self.current = None
        if not levels:
            return None
        loudest = max(levels, key=lambda p: smooth[p])
        if self.current is None:
            self.current = loudest if smooth[loudest] >= self.threshold_db else next(iter(levels))
            self.since = now
        elif (
            loudest != self.current
            and smooth[loudest] >= self.threshold_db
            and smooth[loudest] >= smooth[self.current] + self.margin_db
            and now - self.since >= self.hold
        ):
            self.current = loudest
            self.since = now
        return self.current
