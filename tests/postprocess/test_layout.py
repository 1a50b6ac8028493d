"""Layout geometry: tiles inside the frame, never overlapping, even-aligned, aspect kept."""

from __future__ import annotations

import itertools

import pytest

from postprocess.layout import LayoutKind, Rect, arrange, fit, grid, grid_shape, pip

SIZES = [(640, 360), (1280, 720), (1920, 1080)]


def overlaps(a: Rect, b: Rect) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def check_tiles(rects: list[Rect], width: int, height: int) -> None:
    for r in rects:
        assert not r.empty
        assert r.x % 2 == r.y % 2 == r.w % 2 == r.h % 2 == 0
        assert r.x >= 0 and r.x + r.w <= width and r.y >= 0 and r.y + r.h <= height


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("n", range(1, 17))
def test_grid_tiles_fit_without_overlap(n: int, width: int, height: int) -> None:
    rects = grid(n, width, height, margin=2)
    assert len(rects) == n
    check_tiles(rects, width, height)
    assert not any(overlaps(a, b) for a, b in itertools.combinations(rects, 2))


def test_grid_shape_chosen_for_the_frame() -> None:
    assert [grid_shape(n, 1280, 720) for n in (1, 2, 3, 4, 5, 9, 10, 16)] == [
        (1, 1), (2, 1), (2, 2), (2, 2), (3, 2), (3, 3), (4, 3), (4, 4)
    ]  # fmt: skip


def test_last_row_centred() -> None:
    rects = grid(3, 1280, 720)
    assert rects[2].x == (1280 - rects[2].w) // 2 & ~1


def test_fit_keeps_aspect_and_centres() -> None:
    box = Rect(0, 0, 640, 720)
    landscape = fit(1280, 720, box)
    assert (landscape.w, landscape.h) == (640, 360) and landscape.y == 180
    portrait = fit(480, 640, Rect(0, 0, 1280, 720))  # a phone turned upright: pillarboxed
    assert portrait.h == 720 and portrait.w == 540 and portrait.x == 370
    assert abs(portrait.w / portrait.h - 480 / 640) < 0.01


@pytest.mark.parametrize("kind", list(LayoutKind))
@pytest.mark.parametrize("n", [1, 2, 3, 6, 16, 20])
def test_every_layout_gives_each_present_participant_a_tile(kind: LayoutKind, n: int) -> None:
    ids = [f"p{i}" for i in range(n)]
    tiles = arrange(kind, ids, ids[-1], 1280, 720)
    assert len(tiles) == min(n, 16)
    check_tiles(list(tiles.values()), 1280, 720)
    if kind is not LayoutKind.PIP:
        assert not any(overlaps(a, b) for a, b in itertools.combinations(tiles.values(), 2))


def test_speaker_and_pip_put_the_active_speaker_large() -> None:
    ids = ["a", "b", "c"]
    speaker = arrange(LayoutKind.SPEAKER, ids, "c", 1280, 720)
    assert speaker["c"].w * speaker["c"].h > 4 * speaker["a"].w * speaker["a"].h
    p = arrange(LayoutKind.PIP, ids, "b", 1280, 720)
    assert p["b"] == Rect(0, 0, 1280, 720)
    assert all(p[i].w == 320 for i in ("a", "c"))
    assert len(pip(3, 1280, 720)) == 3


def test_side_by_side_halves_for_two_and_grid_otherwise() -> None:
    two = arrange(LayoutKind.SIDE_BY_SIDE, ["agent", "customer"], None, 1280, 720)
    assert two["agent"].x < 640 <= two["customer"].x and two["agent"].h > 700
    assert len(arrange(LayoutKind.SIDE_BY_SIDE, ["a", "b", "c"], None, 1280, 720)) == 3
