"""A 5x7 bitmap font for names and slates, so composites need no font files and no Pillow.

Glyphs are the classic 5x7 LCD font for printable ASCII: five column bytes per character, bit 0 the top
row. Text outside ASCII is folded to its closest ASCII letters (NFKD), anything else becomes '?'.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np
import numpy.typing as npt

GLYPH_W = 5
GLYPH_H = 7
ADVANCE = GLYPH_W + 1  # one column of spacing

_GLYPHS = bytes.fromhex(
    "0000000000" "00005f0000" "0007000700" "147f147f14" "242a7f2a12" "2313086462" "3649552250"
    "0005030000" "001c224100" "0041221c00" "2a1c7f1c2a" "08083e0808" "0050300000" "0808080808"
    "0060600000" "2010080402" "3e5149453e" "00427f4000" "4261514946" "2141454b31" "1814127f10"
    "2745454539" "3c4a494930" "0171090503" "3649494936" "064949291e" "0036360000" "0056360000"
    "0814224100" "1414141414" "0041221408" "0201510906" "324979413e" "7e1111117e" "7f49494936"
    "3e41414122" "7f4141221c" "7f49494941" "7f09090901" "3e4149497a" "7f0808087f" "00417f4100"
    "2040413f01" "7f08142241" "7f40404040" "7f020c027f" "7f0408107f" "3e4141413e" "7f09090906"
    "3e4151215e" "7f09192946" "4649494931" "01017f0101" "3f4040403f" "1f2040201f" "3f4038403f"
    "6314081463" "0708700807" "6151494543" "007f414100" "0204081020" "0041417f00" "0402010204"
    "4040404040" "0001020400" "2054545478" "7f48444438" "3844444420" "384444487f" "3854545418"
    "087e090102" "0c5252523e" "7f08040478" "00447d4000" "2040443d00" "007f102844" "00417f4000"
    "7c04180478" "7c08040478" "3844444438" "7c14141408" "081414187c" "7c08040408" "4854545420"
    "043f444020" "3c4040207c" "1c2040201c" "3c4030403c" "4428102844" "0c5050503c" "4464544c44"
    "0008364100" "00007f0000" "0041360800" "1008081008"
)  # fmt: skip


def ascii_text(text: str) -> str:
    """`text` folded to printable ASCII: accents dropped (NFKD), other characters as '?'."""
    folded = unicodedata.normalize("NFKD", text)
    out = []
    for ch in folded:
        if unicodedata.combining(ch):
            continue
        out.append(ch if " " <= ch <= "~" else "?")
    return "".join(out)


@lru_cache(maxsize=256)
def text_mask(text: str, scale: int = 1) -> npt.NDArray[np.bool_]:
    """A boolean mask (height, width) of `text` drawn at `scale` (pixels per font pixel)."""
    text = ascii_text(text)
    mask = np.zeros((GLYPH_H, max(1, len(text) * ADVANCE - 1)), dtype=np.bool_)
    rows = np.arange(GLYPH_H)[:, None]
    for i, ch in enumerate(text):
        code = ord(ch) - 0x20
        cols = np.frombuffer(_GLYPHS, dtype=np.uint8, count=GLYPH_W, offset=code * GLYPH_W)
        mask[:, i * ADVANCE : i * ADVANCE + GLYPH_W] = (cols[None, :] >> rows) & 1
    if scale > 1:
        mask = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
    return mask


def text_width(text: str, scale: int = 1) -> int:
    return max(1, len(ascii_text(text)) * ADVANCE - 1) * scale


def fit_text(text: str, max_width: int, scale: int) -> str:
    """`text` shortened with '...' so that it fits `max_width` pixels at `scale`."""
    text = ascii_text(text)
    if text_width(text, scale) <= max_width:
        return text
    keep = max(0, (max_width // scale + 1) // ADVANCE - 3)
    return text[:keep] + "..."
