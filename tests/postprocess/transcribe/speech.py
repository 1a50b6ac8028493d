"""Test speech: espeak-ng (Debian) reads a script into a WAV, ffmpeg encodes it as Opus in WebM (48 kHz
stereo, as a browser sends it), with `lead` seconds of silence first. 150 words a minute with 120 ms
between words: read that way, Whisper tiny.en writes a card number's digits as said (at espeak's default
pace it drops repeated digits: "one four eight eight" becomes "148")."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from composite_kit import Publisher

from recorder.models import TrackSummary


def speak(folder: Path, name: str, text: str, lead: float = 0.5, tail: float = 0.8) -> Path:
    wav = folder / f"{name}.wav"
    out = folder / f"{name}.webm"
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "150", "-g", "12", "-w", str(wav), text], check=True, timeout=60
    )
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav),
         "-af", f"adelay={round(lead * 1000)}:all=1,apad=pad_dur={tail}",
         "-ar", "48000", "-ac", "2", "-c:a", "libopus", "-b:a", "48k", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


def pcm(path: Path, rate: int = 16_000) -> np.ndarray:
    """The file's audio, mono float32 at `rate`."""
    chunks = []
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in c.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def onset(samples: np.ndarray, rate: int = 16_000, threshold: float = 0.01) -> float:
    """Seconds to the first 10 ms window whose RMS is above `threshold`."""
    win = rate // 100
    n = samples.size // win
    rms = np.sqrt((samples[: n * win].reshape(n, win) ** 2).mean(axis=1))
    loud = np.nonzero(rms > threshold)[0]
    return float(loud[0] * win / rate) if loud.size else 0.0


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference's length."""
    ref, hyp = reference.split(), hypothesis.split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))


AGENT_SAYS = "Acme support, how can I help you?"
CUSTOMER_SAYS = (
    "My card number is four five three nine, one four eight eight, zero three four three, six four six seven."
    " The expiration date is zero nine, two eight."
    " My order number is five two seven three, eight four zero one, nine two six five, eight three zero one."
    " My extension is four five six seven."
)
CARD = "4539148803436467"  # Luhn-valid
ORDER = "5273840192658301"  # 16 digits, Luhn-invalid
EXTENSION = "4567"
AGENT = Publisher("alice", tone=0, seconds=0, video=False)
CUSTOMER = Publisher("bob", tone=0, seconds=0, start_delay=3.0, video=False)


@dataclass
class SpokenCall:
    folder: Path
    summaries: dict[str, TrackSummary]
    onsets: dict[str, float]
    """Seconds from the start of each publisher's file to its first speech."""

    def copy(self, dst: Path) -> Path:
        shutil.copytree(self.folder, dst)
        return dst
