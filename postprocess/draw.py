"""Drawing on 4:2:0 planes: filled boxes, pictures, names on tiles, overlays. Pure numpy, no files.

A `Canvas` is three writable plane views (Y full size, U and V half size) of the output frame; every
rectangle drawn is even-aligned (layout.Rect), so chroma is addressed by halving. Text comes rendered and
cached from postprocess.text as Sprites; here it is only blended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from postprocess.layout import Rect
from postprocess.text import SLATE_RGB, Sprite, label, label_size, yuv_colour

Plane = npt.NDArray[np.uint8]

BLACK = (16, 128, 128)
INSET_EDGE = (150, 128, 128)  # a grey frame around picture-in-picture insets
SLATE_BG = yuv_colour(SLATE_RGB)


@dataclass(slots=True)
class Canvas:
    y: Plane
    u: Plane
    v: Plane

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])


def fill(canvas: Canvas, r: Rect, color: tuple[int, int, int] = BLACK) -> None:
    if r.empty:
        return
    canvas.y[r.y : r.y + r.h, r.x : r.x + r.w] = color[0]
    cx, cy, cw, ch = r.x // 2, r.y // 2, r.w // 2, r.h // 2
    canvas.u[cy : cy + ch, cx : cx + cw] = color[1]
    canvas.v[cy : cy + ch, cx : cx + cw] = color[2]


def fill_around(canvas: Canvas, outer: Rect, inner: Rect, color: tuple[int, int, int] = BLACK) -> None:
    """Fill the parts of `outer` not covered by `inner` (the letterbox or pillarbox bars)."""
    top = Rect(outer.x, outer.y, outer.w, inner.y - outer.y)
    bottom = Rect(outer.x, inner.y + inner.h, outer.w, outer.y + outer.h - inner.y - inner.h)
    left = Rect(outer.x, inner.y, inner.x - outer.x, inner.h)
    right = Rect(inner.x + inner.w, inner.y, outer.x + outer.w - inner.x - inner.w, inner.h)
    for part in (top, bottom, left, right):
        fill(canvas, part, color)


def outline(canvas: Canvas, r: Rect, color: tuple[int, int, int], width: int = 2) -> None:
    """A frame `width` pixels wide (even) just inside `r`."""
    w = max(2, width & ~1)
    for part in (Rect(r.x, r.y, r.w, w), Rect(r.x, r.y + r.h - w, r.w, w),
                 Rect(r.x, r.y, w, r.h), Rect(r.x + r.w - w, r.y, w, r.h)):  # fmt: skip
        fill(canvas, part, color)


def blit(canvas: Canvas, r: Rect, planes: tuple[Plane, Plane, Plane]) -> None:
    """Copy Y, U, V planes of exactly r's size into the canvas at r."""
    py, pu, pv = planes
    canvas.y[r.y : r.y + r.h, r.x : r.x + r.w] = py[: r.h, : r.w]
    cx, cy, cw, ch = r.x // 2, r.y // 2, r.w // 2, r.h // 2
    canvas.u[cy : cy + ch, cx : cx + cw] = pu[:ch, :cw]
    canvas.v[cy : cy + ch, cx : cx + cw] = pv[:ch, :cw]


def sprite_rect(canvas: Canvas, sprite: Sprite, x: int, y: int) -> Rect:
    """Where `sprite` lands at (x, y) (made even), clipped to the canvas."""
    x, y = max(0, x) & ~1, max(0, y) & ~1
    return Rect(x, y, min(sprite.width, canvas.width - x) & ~1, min(sprite.height, canvas.height - y) & ~1)


def _mix(under: Plane, colour: npt.NDArray[np.uint16], keep: npt.NDArray[np.uint16]) -> None:
    mixed = under.astype(np.uint32)
    mixed *= keep
    mixed += colour
    mixed += 127
    mixed //= 255
    under[...] = mixed


def blend(canvas: Canvas, sprite: Sprite, x: int, y: int) -> Rect:
    """Blend `sprite` onto the canvas with its top left at (x, y); returns the rectangle it covers."""
    r = sprite_rect(canvas, sprite, x, y)
    if r.empty:
        return r
    h, w, ch, cw = r.h, r.w, r.h // 2, r.w // 2
    _mix(canvas.y[r.y : r.y + h, r.x : r.x + w], sprite.y[:h, :w], sprite.keep[:h, :w])
    cy, cx = r.y // 2, r.x // 2
    _mix(canvas.u[cy : cy + ch, cx : cx + cw], sprite.u[:ch, :cw], sprite.keep_c[:ch, :cw])
    _mix(canvas.v[cy : cy + ch, cx : cx + cw], sprite.v[:ch, :cw], sprite.keep_c[:ch, :cw])
    return r


def draw_label(
    canvas: Canvas, tile: Rect, name: str, role: str | None = None, marker: bool = False
) -> Rect | None:
    """The participant's name (with its role) at the bottom left of the tile; `marker` adds a green bar
    in front of it (the active speaker)."""
    size = label_size(tile.h, canvas.height)
    margin = max(2, size // 3) & ~1
    sprite = label(name, role, size, tile.w - 2 * margin, marker)
    if sprite is None or sprite.height + 2 * margin > tile.h:
        return None
    return blend(canvas, sprite, tile.x + margin, tile.y + tile.h - sprite.height - margin)


@dataclass
class Overlays:
    """What is drawn over the composed picture on every frame (the clock, join/leave notices), undone
    before the next frame is composed: tiles are redrawn only when their picture changes, so the canvas
    must hold the tiles alone when they are not."""

    canvas: Canvas
    _under: list[tuple[Rect, Plane, Plane, Plane]] = field(default_factory=list)

    def restore(self) -> None:
        """Put back what the overlays covered."""
        for r, y, u, v in reversed(self._under):
            blit(self.canvas, r, (y, u, v))
        self._under.clear()

    def draw(self, sprite: Sprite, x: int, y: int) -> None:
        c = self.canvas
        r = sprite_rect(c, sprite, x, y)
        if r.empty:
            return
        cx, cy, cw, ch = r.x // 2, r.y // 2, r.w // 2, r.h // 2
        self._under.append((
            r,
            c.y[r.y : r.y + r.h, r.x : r.x + r.w].copy(),
            c.u[cy : cy + ch, cx : cx + cw].copy(),
            c.v[cy : cy + ch, cx : cx + cw].copy(),
        ))  # fmt: skip
        blend(c, sprite, r.x, r.y)
