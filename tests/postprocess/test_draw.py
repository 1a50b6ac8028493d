"""Text on composites: anti-aliased names with roles, the UTC clock, notices, slates; overlays undone."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess.draw import SLATE_BG, Canvas, Overlays, blend, draw_label
from postprocess.inputs import name_and_role
from postprocess.layout import Rect
from postprocess.text import clock, clock_text, label, notice, slate


def canvas(width: int = 640, height: int = 360, luma: int = 100) -> Canvas:
    return Canvas(
        np.full((height, width), luma, np.uint8),
        np.full((height // 2, width // 2), 128, np.uint8),
        np.full((height // 2, width // 2), 128, np.uint8),
    )


def test_label_is_anti_aliased_with_its_role_inside_its_tile() -> None:
    c = canvas()
    tile = Rect(320, 0, 320, 180)
    r = draw_label(c, tile, "Zoë Ångström", "agent", marker=True)
    assert r is not None
    changed = np.argwhere(c.y != 100)
    assert len(changed) and changed[:, 1].min() >= 320 and changed[:, 0].max() < 180
    region = c.y[r.y : r.y + r.h, r.x : r.x + r.w]
    assert region.max() > 200  # white text on a darkened band
    # Anti-aliased: glyph edges blend into the band, so far more than two levels (a bitmap font: 2 or 3).
    assert len(np.unique(region)) > 20
    edges = region[(region > 60) & (region < 200)]
    assert edges.size > 50
    # The agent's role tag is blue (high U), the customer's orange (high V).
    u = c.u[r.y // 2 : (r.y + r.h) // 2, r.x // 2 : (r.x + r.w) // 2]
    assert u.max() > 170
    c2 = canvas()
    r2 = draw_label(c2, tile, "Bob", "customer")
    assert r2 is not None
    assert c2.v[r2.y // 2 : (r2.y + r2.h) // 2, r2.x // 2 : (r2.x + r2.w) // 2].max() > 160


def test_long_names_are_shortened_to_the_tile() -> None:
    sprite = label("A very long display name that cannot fit on a small tile", "customer", 14, 200)
    assert sprite is not None and sprite.width <= 200
    assert label("x", None, 14, 10) is None  # nothing fits: nothing drawn


@pytest.mark.parametrize(
    ("display", "metadata", "expected"),
    [
        ("Alice Martin (agent)", {}, ("Alice Martin", "agent")),
        ("Bob [Customer]", {}, ("Bob", "customer")),
        ("Carol", {"role": "Supervisor"}, ("Carol", "supervisor")),
        ("Dan (agent)", {"role": "customer"}, ("Dan", "customer")),  # the tag wins
        ("Eve (London)", {}, ("Eve (London)", None)),  # not a role
        ("(agent)", {}, ("(agent)", None)),  # nothing would be left of the name
    ],
)
def test_roles_from_tags_or_display_names(
    display: str, metadata: dict[str, str], expected: tuple[str, str | None]
) -> None:
    assert name_and_role(display, metadata) == expected


def test_clock_shows_the_utc_second() -> None:
    assert clock_text(1_800_000_000.9) == "2027-01-15 08:00:00 UTC"
    a, b = clock(1_800_000_000, 20), clock(1_800_000_001, 20)
    assert a is clock(1_800_000_000, 20)  # rendered once per second, then cached
    assert a.width == b.width and not np.array_equal(a.y, b.y)


def test_overlays_are_undone_before_the_next_frame() -> None:
    c = canvas()
    before = (c.y.copy(), c.u.copy(), c.v.copy())
    overlays = Overlays(c)
    overlays.draw(clock(1_800_000_000, 20), 400, 10)
    overlays.draw(notice("Bob", "customer", True, 14, 300), 10, 10)
    assert not np.array_equal(c.y, before[0])
    overlays.restore()
    for plane, old in zip((c.y, c.u, c.v), before, strict=True):
        assert np.array_equal(plane, old)


def test_blend_is_clipped_to_the_canvas() -> None:
    c = canvas(64, 32)
    r = blend(c, clock(1_800_000_000, 20), 40, 20)
    assert r.x + r.w <= 64 and r.y + r.h <= 32


def test_slates_are_cached_read_only_and_anti_aliased() -> None:
    a = slate(320, 180, "alice", "Camera off", "agent", avatar=True)
    assert a is slate(320, 180, "alice", "Camera off", "agent", avatar=True)
    assert a[0].shape == (180, 320) and a[1].shape == (90, 160)
    assert not a[0].flags.writeable
    assert abs(int(np.median(a[0])) - SLATE_BG[0]) <= 1  # the background
    assert a[0].max() > 200 and len(np.unique(a[0])) > 20
    full = slate(1280, 720, "Recording paused", "nothing was recorded")
    assert full[0].shape == (720, 1280)
