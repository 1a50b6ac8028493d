"""Decode one recorded audio track (Opus in WebM/Matroska) to 16 kHz mono float32, as Whisper takes it.

Samples are placed by their timestamps, so a gap in the file (loss, a pause) stays a gap of silence and a
word's time in the decoded audio is its time in the file."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from postprocess.transcribe.models import TranscriptError

SAMPLE_RATE = 16_000
MAX_SECONDS = 6 * 3600
"""Longer than any call: a file whose timestamps jump beyond this is refused, not allocated."""


def decode_track(path: Path) -> tuple[npt.NDArray[np.float32], float]:
    """The track's audio at 16 kHz mono and the file time (seconds) of its first sample."""
    chunks: list[tuple[int, npt.NDArray[np.float32]]] = []
    first: float | None = None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise TranscriptError(f"{path.name}: no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            cursor = 0
            for frame in container.decode(stream):
                if frame.time is not None:
                    if first is None:
                        first = float(frame.time)
                    expected = round((float(frame.time) - first) * SAMPLE_RATE)
                    if expected > cursor + SAMPLE_RATE // 50:  # a gap of more than 20 ms: keep it
                        cursor = expected
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    chunks.append((cursor, samples))
                    cursor += samples.size
                if cursor > MAX_SECONDS * SAMPLE_RATE:
                    raise TranscriptError(f"{path.name}: longer than {MAX_SECONDS} s")
            for out in resampler.resample(None):
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append((cursor, samples))
                cursor += samples.size
    except (av.FFmpegError, OSError) as exc:
        raise TranscriptError(f"{path.name}: cannot decode: {exc}") from exc
    audio = np.zeros(max((at + s.size for at, s in chunks), default=0), dtype=np.float32)
    for at, samples in chunks:
        audio[at : at + samples.size] = samples
    return audio, first or 0.0
