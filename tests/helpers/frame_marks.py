"""A frame counter stamped into video frames, readable back after lossy compression.

Layout (all positions are fractions of the frame, so any resolution works, including a scaled copy):

* the top ``BAND`` of the frame is a grid of ``ROWS`` x ``COLS`` = 24 cells, each fully black (0) or
  white (1): 16 bits of counter (most significant first) then 8 bits of CRC-8 over the two counter
  bytes. At 320x240 a cell is 26x36 pixels, far bigger than any codec block, so VP8/H.264 at a few
  hundred kbit/s keep it intact;
* below it, the counter in decimal as seven-segment digits (for humans looking at a recording) and a
  bar that moves with the counter (so the encoder has motion to code).

Reading samples the middle half of every cell on the luma plane: mean > 128 is a 1. A cell whose mean
is in the ambiguous middle (``AMBIGUOUS``), or a CRC mismatch, makes the frame unreadable (None): a
damaged or foreign frame is never misread as another counter (a random pattern passes the CRC with
probability 1/256, and only if every cell is clearly black or white).

    y = render_luma(42, 320, 240)            # uint8 (240, 320)
    read_counter(y)                           # 42
    frame = render_yuv420(42, 320, 240)       # uint8 (360, 320), av.VideoFrame.from_ndarray(..., "yuv420p")
    read_counters("rec/video-1.webm")         # [17, 18, 19, ...] one per decoded frame
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BITS = 16
CHECK_BITS = 8
ROWS = 2
COLS = 12
BAND = 0.3
"""Fraction of the frame height used by the cell grid."""
BLACK = 16
WHITE = 235
BACKGROUND = 96
AMBIGUOUS = (70, 186)
"""Cell means inside this range (exclusive) make a frame unreadable."""
MAX_COUNTER = (1 << BITS) - 1

# Seven-segment digits: segments a b c d e f g (top, top right, bottom right, bottom, bottom left,
# top left, middle).
_SEGMENTS = {
    "0": "abcdef",
    "1": "bc",
    "2": "abdeg",
    "3": "abcdg",
    "4": "bcfg",
    "5": "acdfg",
    "6": "acdefg",
    "7": "abc",
    "8": "abcdefg",
    "9": "abcdfg",
}


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, init 0), as in SMBus/ATM HEC."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_bits(counter: int) -> list[int]:
    """The 24 cell values for ``counter`` (0..65535): counter bits then CRC bits, MSB first."""
    if not 0 <= counter <= MAX_COUNTER:
        raise ValueError(f"counter {counter} does not fit in {BITS} bits")
    check = crc8(counter.to_bytes(2, "big"))
    word = (counter << CHECK_BITS) | check
    total = BITS + CHECK_BITS
    return [(word >> (total - 1 - i)) & 1 for i in range(total)]


def decode_bits(bits: list[int]) -> int | None:
    """The counter the 24 cell values carry, or None when the CRC does not match."""
    if len(bits) != BITS + CHECK_BITS:
        raise ValueError(f"expected {BITS + CHECK_BITS} bits, got {len(bits)}")
    word = 0
    for bit in bits:
        word = (word << 1) | (1 if bit else 0)
    counter, check = word >> CHECK_BITS, word & 0xFF
    return counter if crc8(counter.to_bytes(2, "big")) == check else None


def _cells(width: int, height: int) -> Iterator[tuple[int, int, int, int]]:
    """(top, bottom, left, right) of every cell, in bit order."""
    band = int(height * BAND)
    for row in range(ROWS):
        top, bottom = band * row // ROWS, band * (row + 1) // ROWS
        for col in range(COLS):
            yield top, bottom, width * col // COLS, width * (col + 1) // COLS


def stamp(luma: np.ndarray, counter: int) -> None:
    """Draw the cell grid for ``counter`` into a luma plane (uint8, height x width), in place."""
    height, width = luma.shape
    for bit, (top, bottom, left, right) in zip(encode_bits(counter), _cells(width, height), strict=True):
        luma[top:bottom, left:right] = WHITE if bit else BLACK


def _draw_digits(luma: np.ndarray, text: str, top: int, left: int, digit_h: int) -> None:
    digit_w = max(3, digit_h // 2)
    thick = max(1, digit_h // 8)
    for i, char in enumerate(text):
        x0 = left + i * (digit_w + 2 * thick)
        x1 = x0 + digit_w
        mid = top + digit_h // 2
        bottom = top + digit_h
        boxes = {
            "a": (top, top + thick, x0, x1),
            "b": (top, mid, x1 - thick, x1),
            "c": (mid, bottom, x1 - thick, x1),
            "d": (bottom - thick, bottom, x0, x1),
            "e": (mid, bottom, x0, x0 + thick),
            "f": (top, mid, x0, x0 + thick),
            "g": (mid - thick // 2, mid - thick // 2 + thick, x0, x1),
        }
        for seg in _SEGMENTS.get(char, ""):
            y0, y1, xa, xb = boxes[seg]
            luma[y0:y1, xa:xb] = WHITE


def render_luma(counter: int, width: int, height: int, background: np.ndarray | None = None) -> np.ndarray:
    """A luma plane (uint8, height x width) carrying ``counter``: the cell grid, the decimal counter and
    a moving bar, drawn over ``background`` (a luma plane; default flat gray)."""
    if width < COLS * 4 or height < 40:
        raise ValueError(f"frame {width}x{height} is too small for the counter marks")
    if background is None:
        luma = np.full((height, width), BACKGROUND, dtype=np.uint8)
        bar_w = max(2, width // 32)
        x = (counter * max(1, width // 60)) % (width - bar_w)
        luma[int(height * BAND) :, x : x + bar_w] = 200
    else:
        if background.shape != (height, width):
            raise ValueError(f"background is {background.shape}, expected {(height, width)}")
        luma = background.astype(np.uint8, copy=True)
    stamp(luma, counter)
    digit_h = max(8, height // 5)
    top = int(height * BAND) + max(2, height // 20)
    _draw_digits(luma, str(counter), top, max(2, width // 20), digit_h)
    return luma


def render_yuv420(
    counter: int,
    width: int,
    height: int,
    background: np.ndarray | None = None,
    chroma: tuple[int, int] = (128, 128),
) -> np.ndarray:
    """A yuv420p image (uint8, height*3/2 x width, the layout ``av.VideoFrame.from_ndarray(a, "yuv420p")``
    takes) carrying ``counter``. ``chroma`` (U, V) tints the whole frame, e.g. to tell publishers apart."""
    if width % 2 or height % 2:
        raise ValueError("yuv420p needs an even width and height")
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = render_luma(counter, width, height, background)
    out[height:] = 128
    quarter = height // 4
    out[height : height + quarter] = chroma[0]
    out[height + quarter :] = chroma[1]
    return out


def read_counter(luma: np.ndarray) -> int | None:
    """The counter carried by a decoded frame's luma plane (height x width), or None if unreadable."""
    if luma.ndim != 2:
        raise ValueError(f"expected a 2-D luma plane, got shape {luma.shape}")
    height, width = luma.shape
    bits: list[int] = []
    for top, bottom, left, right in _cells(width, height):
        h, w = bottom - top, right - left
        core = luma[top + h // 4 : bottom - h // 4, left + w // 4 : right - w // 4]
        mean = float(core.mean()) if core.size else 128.0
        if AMBIGUOUS[0] < mean < AMBIGUOUS[1]:
            return None
        bits.append(1 if mean >= 128 else 0)
    return decode_bits(bits)


@dataclass(frozen=True)
class FrameMark:
    """One decoded frame of a recording: its presentation time (s) and counter (None if unreadable)."""

    time: float | None
    counter: int | None
    keyframe: bool


def read_marks(path: str | Path) -> list[FrameMark]:
    """Decode the first video stream of ``path`` with PyAV; one ``FrameMark`` per decoded frame."""
    import av

    marks: list[FrameMark] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            height = frame.height
            luma = frame.to_ndarray(format="yuv420p")[:height]
            marks.append(FrameMark(frame.time, read_counter(luma), bool(frame.key_frame)))
    return marks


def read_counters(path: str | Path) -> list[int]:
    """The counter of every decoded frame of ``path``'s first video stream, in presentation order.

    A single unreadable frame between two readable ones takes the counter they leave for it
    (``pinned_counters``). Raises ValueError naming the frames whose marks cannot be read otherwise (use
    ``read_marks`` to tolerate them).
    """
    counters = pinned_counters(read_marks(path))
    bad = [i for i, c in enumerate(counters) if c is None]
    if bad:
        count = f"{len(bad)} of {len(counters)} frames"
        raise ValueError(f"{path}: {count} carry no readable counter: {bad[:20]}")
    return [c for c in counters if c is not None]


def pinned_counters(marks: list[FrameMark]) -> list[int | None]:
    """Every frame's counter, an unreadable frame taking the one counter its neighbours leave for it.

    A low-bitrate encoder sometimes blurs one cell of a frame (seen with aiortc's VP8 just before a
    requested keyframe) although the frame decodes cleanly; when the frames either side read ``a`` and
    ``a + 2``, the frame between them can only be ``a + 1``. Anything else stays None, so a frame that is
    really damaged or out of place still fails the caller's checks.
    """
    counters = [m.counter for m in marks]
    pinned = list(counters)
    for i in range(1, len(counters) - 1):
        before, after = counters[i - 1], counters[i + 1]
        if counters[i] is None and before is not None and after is not None and after == before + 2:
            pinned[i] = before + 1
    return pinned


def gaps(counters: list[int]) -> list[tuple[int, int]]:
    """(last counter before, first counter after) for each jump of more than 1 between neighbours."""
    return [(a, b) for a, b in itertools.pairwise(counters) if b != a + 1]
