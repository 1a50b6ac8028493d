"""How a composite looks, judged on its decoded frames: frames of every layout are saved as PNG files
(under pytest's tmp dir, `frames/`, printed at the end of each test) to be looked at; in them the names
with their roles are drawn in a real anti-aliased font, the UTC clock is on every frame and changes with
each second, a late joiner is announced, and pauses show a slate under the clock."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
from composite_kit import Call
from PIL import Image

from postprocess.composite import build_composite, clock_place
from postprocess.draw import SLATE_BG, Canvas, draw_label
from postprocess.layout import LayoutKind, arrange
from postprocess.options import CompositeOptions, CompositeResult
from postprocess.text import Sprite, clock, clock_size
from recorder.models import PauseInterval
from recorder.recording import ParticipantInfo, RecordingInfo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
W, H = 1280, 720
PAUSE = (4.8, 5.4)  # composite seconds of a recording pause


def info_of(call: Call) -> RecordingInfo:
    t0 = call.summaries["alice-audio-1"].first_wallclock
    assert t0 is not None
    return RecordingInfo(
        recording_id="look", folder=call.folder, started_at=t0,
        participants=[
            ParticipantInfo(id="alice", display_name="Alice Martin (agent)"),
            ParticipantInfo(id="bob", display_name="Bob Stone", metadata={"role": "customer"}),
        ],
        track_participants={n: n.split("-")[0] for n in call.summaries},
        pauses=[PauseInterval(start_time=t0 + PAUSE[0], end_time=t0 + PAUSE[1])],
    )  # fmt: skip


def frames_at(path: Path, times: list[float]) -> dict[float, av.VideoFrame]:
    """The frame shown at each time (the last one starting at or before it)."""
    shown: dict[float, av.VideoFrame] = {}
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            for t in times:
                if float(frame.time) <= t + 1e-6:
                    shown[t] = frame
    return shown


def planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = frame.to_ndarray(format="yuv420p")
    return a[:H], a[H : H + H // 4].reshape(H // 2, W // 2), a[H + H // 4 :].reshape(H // 2, W // 2)


def shows_second(y: np.ndarray, second: int, other: int) -> bool:
    """Whether the clock in luma plane `y` reads `second` rather than `other`: where the two renderings
    differ, the frame is much closer to the rendering of `second`."""
    size = clock_size(H)
    a, b = clock(second, size), clock(other, size)
    x, top = clock_place(W, H, a)
    region = y[top : top + a.height, x : x + a.width].astype(float)
    background = float(np.median(y[top : top + a.height, max(0, x - 12) : x]))

    def drawn(sprite: Sprite) -> np.ndarray:  # the clock's luma as drawn on that background
        return (background * sprite.keep + sprite.y) / 255

    la, lb = drawn(a), drawn(b)
    differ = np.abs(la - lb) > 40
    assert differ.sum() > 10
    return bool(np.abs(region - la)[differ].mean() * 2 < np.abs(region - lb)[differ].mean())


def save(frame: av.VideoFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame.to_ndarray(format="rgb24")).save(path)


def composite(call: Call, tmp_path: Path, layout: LayoutKind) -> CompositeResult:
    options = CompositeOptions(layout=layout, profile="hd", out=tmp_path / f"{layout}.mp4")
    return build_composite(call.folder, options, info=info_of(call))


@pytest.mark.parametrize("layout", list(LayoutKind))
def test_frames_of_every_layout(call: Call, tmp_path: Path, layout: LayoutKind) -> None:
    result = composite(call, tmp_path, layout)
    assert [(p.name, p.role) for p in result.participants] == [("Alice Martin", "agent"),
                                                               ("Bob Stone", "customer")]  # fmt: skip
    boundary = math.ceil(result.started_at) - result.started_at  # composite time of a new UTC second
    tick = boundary + 2.3 if boundary + 3.3 < PAUSE[0] else boundary + 1.3
    times = [0.2, 2.5, tick, tick + 1.0, 4.5, 5.1]
    frames = frames_at(result.path, times)
    for t, frame in frames.items():
        save(frame, tmp_path / "frames" / f"{layout}-{t:.2f}s.png")
    print(f"\nframes of the {layout} layout: {tmp_path / 'frames'}")

    # The clock reads the UTC second of each frame, and a second later the next one.
    second = math.floor(result.started_at + tick)
    y_tick, y_next = planes(frames[tick])[0], planes(frames[tick + 1.0])[0]
    assert shows_second(y_tick, second, second + 1) and shows_second(y_tick, second, second - 1)
    assert shows_second(y_next, second + 1, second)

    # Bob joined 1.3 s in: announced at the top left for 3 s, then gone.
    notice_at = (slice(12, 60), slice(12, 420))
    assert (planes(frames[2.5])[0][notice_at] > 200).sum() > 200
    assert (planes(frames[4.5])[0][notice_at] > 200).sum() < 50

    # The recording's pause: the whole frame is a slate, the clock still on it.
    y_pause = planes(frames[5.1])[0]
    assert abs(float(np.median(y_pause)) - SLATE_BG[0]) < 6
    assert shows_second(y_pause, math.floor(result.started_at + 5.1), math.floor(result.started_at + 6.1))

    # Before alice's camera starts her tile is her slate (she is alone: the whole frame).
    assert abs(float(np.median(planes(frames[0.2])[0])) - SLATE_BG[0]) < 6


def test_names_and_roles_are_visible_on_the_tiles(call: Call, tmp_path: Path) -> None:
    result = composite(call, tmp_path, LayoutKind.SIDE_BY_SIDE)
    frame = frames_at(result.path, [3.5])[3.5]
    save(frame, tmp_path / "frames" / "labels.png")
    y, u, v = planes(frame)
    tiles = arrange(LayoutKind.SIDE_BY_SIDE, ["alice", "bob"], None, W, H)
    blank = Canvas(np.zeros((H, W), np.uint8), np.zeros((H // 2, W // 2), np.uint8),
                   np.zeros((H // 2, W // 2), np.uint8))  # fmt: skip
    for pid, name, role in (("alice", "Alice Martin", "agent"), ("bob", "Bob Stone", "customer")):
        r = draw_label(blank, tiles[pid], name, role)
        assert r is not None
        band = y[r.y : r.y + r.h, r.x : r.x + r.w]
        assert (band > 200).sum() > 150 and (band < 60).sum() > 150, pid  # white text on a dark band
        cu = u[r.y // 2 : (r.y + r.h) // 2, r.x // 2 : (r.x + r.w) // 2]
        cv = v[r.y // 2 : (r.y + r.h) // 2, r.x // 2 : (r.x + r.w) // 2]
        if role == "agent":
            assert (cu > 160).sum() > 20  # the blue AGENT tag
        else:
            assert (cv > 150).sum() > 20  # the orange CUSTOMER tag
