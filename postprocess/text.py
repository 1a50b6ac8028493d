"""Text on composites: names, role labels, the UTC clock, notices and slates, drawn with a real font.

Text is rendered by Pillow (FreeType, anti-aliased) in DejaVu Sans, shipped in `postprocess/fonts/` with its
license, so composites look the same on every machine and need no system fonts. Everything drawn here is
rendered once per distinct content (a name on a tile of one size, one second of the clock, a slate) and
cached; the per-frame path only blends the cached result (draw.blend), never calls Pillow.

A `Sprite` is an RGBA picture converted for blending onto 4:2:0 planes: Y, U and V premultiplied by alpha
(U, V and alpha averaged over 2x2 for the half-size chroma planes), with even width and height. Colours are
converted with BT.601 limited range, as the frames they are drawn on.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(__file__).parent / "fonts"
REGULAR = FONT_DIR / "DejaVuSans.ttf"
BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]
Plane = npt.NDArray[np.uint8]
Weights = npt.NDArray[np.uint16]

WHITE: RGB = (255, 255, 255)
DIM: RGB = (176, 181, 191)
SLATE_RGB: RGB = (26, 29, 36)  # luma 40 (draw.SLATE_BG)
BAND_ALPHA = 165  # the dark band behind a label: about 65 % black, readable on any picture
ROLE_COLOURS: dict[str, RGB] = {"agent": (37, 99, 235), "customer": (217, 119, 6)}
OTHER_ROLE: RGB = (100, 108, 122)
SPEAKER_MARK: RGB = (34, 197, 94)
JOINED: RGB = (34, 197, 94)
LEFT: RGB = (239, 68, 68)
ELLIPSIS = "\u2026"


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BOLD if bold else REGULAR), max(6, size))


def printable(text: str) -> str:
    """`text` without control characters (a display name is user input)."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()


def text_width(text: str, f: ImageFont.FreeTypeFont) -> int:
    return int(np.ceil(f.getlength(text)))


def fit(text: str, f: ImageFont.FreeTypeFont, max_width: int) -> str:
    """`text`, shortened with an ellipsis so that it is at most `max_width` pixels wide."""
    if text_width(text, f) <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix that fits with the ellipsis
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + ELLIPSIS, f) <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + ELLIPSIS if lo else ""


def role_colour(role: str) -> RGB:
    return ROLE_COLOURS.get(role.lower(), OTHER_ROLE)


# -- colour conversion ------------------------------------------------------------------------------


def _yuv(rgb: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], ...]:
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    return y, u, v


def _half(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    h, w = a.shape
    out: npt.NDArray[np.float32] = a[: h & ~1, : w & ~1].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return out


def yuv_colour(rgb: RGB) -> tuple[int, int, int]:
    y, u, v = _yuv(np.array(rgb, np.float32))
    return round(float(y)), round(float(u)), round(float(v))


def planes_from_rgb(image: Image.Image) -> tuple[Plane, Plane, Plane]:
    """An RGB picture with even width and height as read-only 4:2:0 planes."""
    rgb = np.asarray(image.convert("RGB"), np.float32)
    y, u, v = _yuv(rgb)
    planes = tuple(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, _half(u), _half(v)))
    for p in planes:
        p.setflags(write=False)
    return planes[0], planes[1], planes[2]


@dataclass(frozen=True, slots=True)
class Sprite:
    """See the module documentation. `y`, `u`, `v` are colour x alpha; `keep`, `keep_c` are 255 - alpha
    (full and half size): blended = (under * keep + colour) / 255."""

    y: Weights
    keep: Weights
    u: Weights
    v: Weights
    keep_c: Weights

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_rgba(cls, image: Image.Image) -> Sprite:
        w, h = image.size
        if w % 2 or h % 2:  # even sizes: chroma is addressed by halving
            padded = Image.new("RGBA", (w + w % 2, h + h % 2), (0, 0, 0, 0))
            padded.paste(image, (0, 0))
            image = padded
        rgba = np.asarray(image.convert("RGBA"), np.float32)
        alpha = rgba[..., 3]
        y, u, v = _yuv(rgba[..., :3])
        alpha_c = _half(alpha)

        def weights(a: npt.NDArray[np.float32]) -> Weights:
            out = np.clip(np.rint(a), 0, 65025).astype(np.uint16)
            out.setflags(write=False)
            return out

        return cls(
            y=weights(y * alpha),
            keep=weights(255 - alpha),
            u=weights(_half(u * alpha)),
            v=weights(_half(v * alpha)),
            keep_c=weights(255 - alpha_c),
        )


def _rounded(draw: ImageDraw.ImageDraw, box: Box, fill: tuple[int, ...]) -> None:
    radius = max(1, round(min(box[2] - box[0], box[3] - box[1]) * 0.25))
    draw.rounded_rectangle(box, radius=radius, fill=fill)


# -- labels, the clock, notices ----------------------------------------------------------------------


def label_size(tile_h: int, frame_h: int) -> int:
    """Font pixel size of names on a tile: a 30th of the frame's height, smaller on small tiles."""
    return max(11, min(round(frame_h / 30), round(tile_h / 9)))


@lru_cache(maxsize=256)
def label(name: str, role: str | None, size: int, max_width: int, speaking: bool = False) -> Sprite | None:
    """A participant's name (and role, as a coloured tag in front of it) on a dark rounded band;
    `speaking` adds a green bar in front (the active speaker). None when nothing fits in `max_width`."""
    name_font, role_font = font(size, bold=True), font(max(8, round(size * 0.72)), bold=True)
    pad = max(3, round(size * 0.4))
    band_h = round(size * 1.3) + pad
    x = pad
    parts: list[tuple[str, object]] = []
    if speaking:
        parts.append(("mark", x))
        x += max(3, size // 5) + pad
    role_text = printable(role or "").upper()
    role_w = 0
    if role_text:
        role_w = text_width(role_text, role_font) + pad * 2
        parts.append(("role", x))
        x += role_w + pad
    room = max_width - x - pad
    shown = fit(printable(name), name_font, room) if room > size else ""
    if not shown and not role_text:
        return None
    width = x + (text_width(shown, name_font) if shown else -pad) + pad
    if width > max_width:
        return None
    image = Image.new("RGBA", (width, band_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _rounded(draw, (0, 0, width - 1, band_h - 1), (0, 0, 0, BAND_ALPHA))
    for kind, at in parts:
        assert isinstance(at, int)
        if kind == "mark":
            draw.rectangle((at, pad, at + max(3, size // 5) - 1, band_h - pad - 1), fill=(*SPEAKER_MARK, 255))
        else:
            top, bottom = pad, band_h - pad - 1
            _rounded(draw, (at, top, at + role_w - 1, bottom), (*role_colour(role or ""), 255))
            draw.text((at + role_w / 2, band_h / 2), role_text, font=role_font, fill=WHITE, anchor="mm")
    if shown:
        draw.text((x, band_h / 2), shown, font=name_font, fill=WHITE, anchor="lm")
    return Sprite.from_rgba(image)


def clock_text(unix: float) -> str:
    return datetime.fromtimestamp(int(unix // 1), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock_size(frame_h: int) -> int:
    return max(11, round(frame_h / 36))


@lru_cache(maxsize=8)
def clock(second: int, size: int) -> Sprite:
    """The UTC date and time of one wall-clock second (Unix), on a dark band."""
    f = font(size)
    text = clock_text(float(second))
    pad = max(3, round(size * 0.4))
    w, h = text_width(text, f) + 2 * pad, round(size * 1.3) + pad
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _rounded(draw, (0, 0, w - 1, h - 1), (0, 0, 0, BAND_ALPHA))
    draw.text((w / 2, h / 2), text, font=f, fill=WHITE, anchor="mm")
    return Sprite.from_rgba(image)


@lru_cache(maxsize=32)
def notice(name: str, role: str | None, joined: bool, size: int, max_width: int) -> Sprite:
    """'<name> (<role>) joined' / 'left', with a green or red dot, on a dark band."""
    f = font(size)
    pad = max(3, round(size * 0.4))
    h = round(size * 1.3) + pad
    dot = round(size * 0.55)
    verb = "joined" if joined else "left"
    who = printable(name) + (f" ({printable(role)})" if role else "")
    room = max_width - 3 * pad - dot - text_width(f" {verb}", f)
    text = f"{fit(who, f, max(room, 0))} {verb}".strip()
    w = min(max_width, 3 * pad + dot + text_width(text, f))
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    _rounded(draw, (0, 0, w - 1, h - 1), (0, 0, 0, BAND_ALPHA))
    top = (h - dot) / 2
    draw.ellipse((pad, top, pad + dot, top + dot), fill=(*(JOINED if joined else LEFT), 255))
    draw.text((2 * pad + dot, h / 2), text, font=f, fill=WHITE, anchor="lm")
    return Sprite.from_rgba(image)


# -- slates ------------------------------------------------------------------------------------------


def initials(name: str) -> str:
    words = [w for w in printable(name).replace("_", " ").replace("-", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    return (words[0][0] + (words[-1][0] if len(words) > 1 else "")).upper()


@lru_cache(maxsize=64)
def slate(
    width: int, height: int, title: str, subtitle: str, role: str | None = None, avatar: bool = False
) -> tuple[Plane, Plane, Plane]:
    """A slate: dark background, `title` (bold) and `subtitle` centred; a participant's slate (`avatar`)
    has a disc with their initials (in their role's colour) above, and the role under the name. Read-only
    4:2:0 planes; cached."""
    image = Image.new("RGB", (width, height), SLATE_RGB)
    draw = ImageDraw.Draw(image)
    big = max(9, min(round(height / 12), round(width / 14), 44))
    small = max(8, round(big * 0.6))
    title_font, sub_font = font(big, bold=True), font(small)
    role_font = font(max(8, round(small * 0.9)), bold=True)
    lines: list[tuple[str, ImageFont.FreeTypeFont, RGB]] = [
        (fit(printable(title), title_font, width - 8), title_font, WHITE)
    ]
    if role:
        lines.append((fit(printable(role).upper(), role_font, width - 8), role_font, role_colour(role)))
    if subtitle:
        lines.append((fit(subtitle, sub_font, width - 8), sub_font, DIM))
    gap = round(small * 0.5)
    disc = min(round(height * 0.28), round(width * 0.3)) if avatar else 0
    if disc and disc < 2 * big:
        disc = 0  # no room for a disc: text only
    heights = [round(f.size * 1.2) for _, f, _ in lines]
    total = sum(heights) + gap * (len(lines) - 1) + (disc + gap * 2 if disc else 0)
    top = max(0, (height - total) / 2)
    if disc:
        left = (width - disc) / 2
        draw.ellipse((left, top, left + disc, top + disc), fill=role_colour(role) if role else OTHER_ROLE)
        draw.text((width / 2, top + disc / 2), initials(title), font=font(round(disc * 0.4), True),
                  fill=WHITE, anchor="mm")  # fmt: skip
        top += disc + gap * 2
    for (text, f, colour), h in zip(lines, heights, strict=True):
        draw.text((width / 2, top + h / 2), text, font=f, fill=colour, anchor="mm")
        top += h + gap
    return planes_from_rgb(image)
