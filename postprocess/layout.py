"""Where each participant's tile goes on the composite: pure geometry, no media.

Every rectangle has even coordinates and sizes, so tiles can be copied plane by plane into a 4:2:0 frame.
Layouts are computed for the participants present at an instant; the caller recomputes when someone joins,
leaves or (speaker, picture-in-picture) when the active speaker changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_TILES = 16
TILE_ASPECT = 16 / 9  # the aspect the grid is optimised for (cameras are mostly 16:9 or 4:3)


class LayoutKind(StrEnum):
    GRID = "grid"
    SPEAKER = "speaker"
    SIDE_BY_SIDE = "side-by-side"
    PIP = "pip"


@dataclass(frozen=True, slots=True)
class Rect:
    x: int
    y: int
    w: int
    h: int

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0


def _even(v: float) -> int:
    return int(v) & ~1


def _rect(x: float, y: float, w: float, h: float) -> Rect:
    """Even-aligned rectangle covering [x, x+w) x [y, y+h) as closely as possible."""
    x0, y0 = _even(x), _even(y)
    return Rect(x0, y0, _even(x + w) - x0, _even(y + h) - y0)


def fit(src_w: int, src_h: int, box: Rect) -> Rect:
    """The largest rectangle of the source's aspect ratio inside `box`, centred (letterbox/pillarbox)."""
    if src_w <= 0 or src_h <= 0 or box.empty:
        return Rect(box.x, box.y, 0, 0)
    scale = min(box.w / src_w, box.h / src_h)
    w = max(2, _even(src_w * scale + 0.5))
    h = max(2, _even(src_h * scale + 0.5))
    w, h = min(w, box.w), min(h, box.h)
    return Rect(box.x + _even((box.w - w) / 2), box.y + _even((box.h - h) / 2), w, h)


def grid_shape(n: int, width: int, height: int, aspect: float = TILE_ASPECT) -> tuple[int, int]:
    """(columns, rows) for n tiles that gives each tile the largest picture of `aspect`."""
    if n <= 0:
        return (0, 0)
    best: tuple[int, int, int, int] | None = None
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        cell_w, cell_h = width / cols, height / rows
        area = min(cell_w, cell_h * aspect) * min(cell_h, cell_w / aspect)
        # Equal picture size: fewer empty cells, then rows as wide as the frame is (side by side first).
        key = (round(area), -(cols * rows), cols if width >= height else rows, cols)
        if best is None or key[:3] > best[:3]:
            best = key
    assert best is not None
    return best[3], math.ceil(n / best[3])


def grid(n: int, width: int, height: int, margin: int = 0) -> list[Rect]:
    """n tiles (1..16) in rows; a last row that is not full is centred."""
    n = min(n, MAX_TILES)
    cols, rows = grid_shape(n, width, height)
    if n == 0:
        return []
    cell_w, cell_h = width / cols, height / rows
    rects = []
    for i in range(n):
        row, col = divmod(i, cols)
        in_row = min(cols, n - row * cols)
        x0 = (width - in_row * cell_w) / 2
        rects.append(
            _rect(x0 + col * cell_w + margin, row * cell_h + margin, cell_w - 2 * margin, cell_h - 2 * margin)
        )
    return rects


def speaker(n: int, width: int, height: int, margin: int = 0) -> list[Rect]:
    """The first tile large (the active speaker), the others in a strip along the bottom."""
    if n <= 1:
        return grid(n, width, height, margin)
    others = min(n - 1, MAX_TILES - 1)
    strip_h = height / 5
    main = _rect(margin, margin, width - 2 * margin, height - strip_h - 2 * margin)
    cell_w = min(width / others, strip_h * TILE_ASPECT)
    x0 = (width - cell_w * others) / 2
    strip = [
        _rect(x0 + i * cell_w + margin, height - strip_h + margin, cell_w - 2 * margin, strip_h - 2 * margin)
        for i in range(others)
    ]
    return [main, *strip]


def side_by_side(n: int, width: int, height: int, margin: int = 0) -> list[Rect]:
    """Two halves, left and right (agent and customer); any other count falls back to the grid."""
    if n != 2:
        return grid(n, width, height, margin)
    half = width / 2
    return [
        _rect(margin, margin, half - 2 * margin, height - 2 * margin),
        _rect(half + margin, margin, half - 2 * margin, height - 2 * margin),
    ]


def pip(n: int, width: int, height: int, margin: int = 0) -> list[Rect]:
    """The first tile fills the frame; the others are insets stacked up from the bottom right corner."""
    if n <= 1:
        return grid(n, width, height, margin)
    insets = min(n - 1, MAX_TILES - 1)
    pad = max(8.0, width / 80)
    inset_w = width / 4
    while True:  # shrink the insets until their columns fit the frame
        inset_h = inset_w / TILE_ASPECT
        per_column = max(1, int((height - pad) // (inset_h + pad)))
        if math.ceil(insets / per_column) * (inset_w + pad) <= width or inset_w < 32:
            break
        inset_w *= 0.8
    rects = [Rect(0, 0, _even(width), _even(height))]
    for i in range(insets):
        col, row = divmod(i, per_column)
        x = width - (col + 1) * (inset_w + pad)
        y = height - (row + 1) * (inset_h + pad)
        rects.append(_rect(x, y, inset_w, inset_h))
    return rects


def arrange(
    kind: LayoutKind, present: Sequence[str], active: str | None, width: int, height: int
) -> dict[str, Rect]:
    """Tile of each present participant (in `present` order, which should be join order). Speaker and
    picture-in-picture put the active speaker first; beyond 16 participants the last ones get no tile."""
    order = list(present)
    if kind in (LayoutKind.SPEAKER, LayoutKind.PIP) and active is not None and active in order:
        order.remove(active)
        order.insert(0, active)
    order = order[:MAX_TILES]
    margin = max(2, _even(width / 320))
    if kind is LayoutKind.GRID:
        rects = grid(len(order), width, height, margin if len(order) > 1 else 0)
    elif kind is LayoutKind.SPEAKER:
        rects = speaker(len(order), width, height, margin)
    elif kind is LayoutKind.SIDE_BY_SIDE:
        rects = side_by_side(len(order), width, height, 0 if len(order) == 2 else margin)
    else:
        rects = pip(len(order), width, height, margin)
    return dict(zip(order, rects, strict=True))
