"""Names and slates drawn with the built-in bitmap font."""

from __future__ import annotations

import numpy as np

from postprocess.draw import Canvas, draw_label, slate
from postprocess.font import ascii_text, fit_text, text_mask, text_width
from postprocess.layout import Rect


def test_text_mask_and_folding() -> None:
    mask = text_mask("Hi", 2)
    assert mask.shape == (14, text_width("Hi", 2)) and mask.any()
    assert ascii_text("Zoë Ångström 日本") == "Zoe Angstrom ??"
    assert fit_text("a very long display name", 60, 1).endswith("...")
    assert text_width(fit_text("a very long display name", 60, 1), 1) <= 60


def test_label_drawn_inside_its_tile_only() -> None:
    y = np.full((360, 640), 100, np.uint8)
    u = np.full((180, 320), 90, np.uint8)
    v = np.full((180, 320), 90, np.uint8)
    tile = Rect(320, 0, 320, 180)
    draw_label(Canvas(y, u, v), tile, "Customer", marker=True)
    changed = np.argwhere(y != 100)
    assert len(changed) and changed[:, 1].min() >= 320 and changed[:, 0].max() < 180
    assert (y == 235).any()  # the text itself


def test_slate_is_cached_and_read_only() -> None:
    a = slate(320, 180, "alice", "Camera off")
    assert a is slate(320, 180, "alice", "Camera off")
    assert a[0].shape == (180, 320) and a[1].shape == (90, 160)
    assert not a[0].flags.writeable and (a[0] > 100).any()
