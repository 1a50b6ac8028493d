"""Drawing on 4:2:0 planes: filled boxes, names on tiles, slates. Pure numpy, no files.

A `Canvas` is three writable plane views (Y full size, U and V half size) of the output frame; every
rectangle drawn is even-aligned (layout.Rect), so chroma is addressed by halving.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from postprocess.font import GLYPH_H, fit_text, text_mask, text_width
from postprocess.layout import Rect

Plane = npt.NDArray[np.uint8]

BLACK = (16, 128, 128)
SLATE_BG = (40, 128, 128)
SLATE_TEXT = 200
SLATE_DIM = 130
LABEL_TEXT = 235


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


def text_scale(tile_h: int) -> int:
    """Font pixel size for labels on a tile of this height (1 on small tiles, up to 4 at FHD)."""
    return max(1, min(4, round(tile_h / 110)))


def draw_text(canvas: Canvas, text: str, x: int, y: int, scale: int, luma: int) -> None:
    mask = text_mask(text, scale)
    h = min(mask.shape[0], canvas.height - y)
    w = min(mask.shape[1], canvas.width - x)
    if h <= 0 or w <= 0:
        return
    region = canvas.y[y : y + h, x : x + w]
    region[mask[:h, :w]] = luma


def draw_label(canvas: Canvas, tile: Rect, name: str, marker: bool = False) -> None:
    """The participant's name on a dark band at the bottom left of the tile; `marker` adds a bar in
    front of it (the active speaker)."""
    scale = text_scale(tile.h)
    pad = 2 * scale
    max_w = tile.w - 4 * pad
    if max_w < 8 or tile.h < GLYPH_H * scale + 2 * pad:
        return
    text = fit_text(name, max_w - (3 * scale if marker else 0), scale)
    band_w = min(tile.w, (text_width(text, scale) + 2 * pad + (3 * scale if marker else 0) + 1) & ~1)
    band_h = (GLYPH_H * scale + 2 * pad + 1) & ~1
    band = Rect(tile.x, tile.y + tile.h - band_h, band_w, band_h)
    ys = canvas.y[band.y : band.y + band.h, band.x : band.x + band.w]
    ys >>= 2  # darken to a quarter: readable on any picture
    ys += 4
    cx, cy = band.x // 2, band.y // 2
    canvas.u[cy : cy + band.h // 2, cx : cx + band.w // 2] = 128
    canvas.v[cy : cy + band.h // 2, cx : cx + band.w // 2] = 128
    x = band.x + pad
    if marker:
        fill(
            canvas, Rect(x & ~1, band.y + pad & ~1, 2 * scale & ~1 or 2, band_h - 2 * pad & ~1), (150, 44, 21)
        )
        x += 3 * scale
    draw_text(canvas, text, x, band.y + pad, scale, LABEL_TEXT)


@lru_cache(maxsize=64)
def slate(width: int, height: int, title: str, subtitle: str) -> tuple[Plane, Plane, Plane]:
    """A slate (dark background, title and subtitle centred) as Y, U, V planes; cached."""
    y = np.full((height, width), SLATE_BG[0], np.uint8)
    u = np.full((height // 2, width // 2), SLATE_BG[1], np.uint8)
    v = np.full((height // 2, width // 2), SLATE_BG[2], np.uint8)
    canvas = Canvas(y, u, v)
    big = max(1, min(6, height // 60))
    small = max(1, big // 2)
    lines = [(fit_text(title, width - 8, big), big, SLATE_TEXT)]
    if subtitle:
        lines.append((fit_text(subtitle, width - 8, small), small, SLATE_DIM))
    total = sum(GLYPH_H * s for _, s, _ in lines) + (GLYPH_H * small if subtitle else 0)
    top = max(0, (height - total) // 2)
    for text, s, luma in lines:
        draw_text(canvas, text, max(0, (width - text_width(text, s)) // 2), top, s, luma)
        top += GLYPH_H * s + GLYPH_H * small
    for plane in (y, u, v):
        plane.setflags(write=False)
    return y, u, v


def blit(canvas: Canvas, r: Rect, planes: tuple[Plane, Plane, Plane]) -> None:
    """Copy Y, U, V planes of exactly r's size into the canvas at r."""
    py, pu, pv = planes
    canvas.y[r.y : r.y + r.h, r.x : r.x + r.w] = py[: r.h, : r.w]
    cx, cy, cw, ch = r.x // 2, r.y // 2, r.w // 2, r.h // 2
    canvas.u[cy : cy + ch, cx : cx + cw] = pu[:ch, :cw]
    canvas.v[cy : cy + ch, cx : cx + cw] = pv[:ch, :cw]
