"""Fast checks of the e2e helpers themselves: frame marks through real lossy encoders, and the network
namespace helper (root only)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import av
import numpy as np
import pytest
from frame_marks import (
    BLACK,
    WHITE,
    FrameMark,
    encode_bits,
    gaps,
    pinned_counters,
    read_counter,
    read_counters,
    read_marks,
    render_luma,
    render_yuv420,
)
from netns import network_namespace, unavailable_reason
from webrtc import counter_ranges, expand_ranges, parse_pattern


def encode(path: Path, codec: str, counters: list[int], size: tuple[int, int], bit_rate: int) -> None:
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", bit_rate
        for i, counter in enumerate(counters):
            frame = av.VideoFrame.from_ndarray(
                render_yuv420(counter, width, height, chroma=(90, 170)), "yuv420p"
            )
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_every_counter_round_trips_on_a_clean_frame() -> None:
    for counter in [*range(0, 70), *range(65500, 65536), 12345, 0x5555, 0xAAAA]:
        assert read_counter(render_luma(counter, 320, 240)) == counter
    with pytest.raises(ValueError):
        encode_bits(65536)


@pytest.mark.parametrize(
    ("codec", "ext", "size", "bit_rate"),
    [("libvpx", "webm", (320, 240), 100_000), ("libx264", "mkv", (320, 240), 80_000),
     ("libvpx", "webm", (640, 360), 150_000), ("libx264", "mp4", (176, 144), 40_000)],
)  # fmt: skip
def test_counters_survive_lossy_encoding(
    tmp_path: Path, codec: str, ext: str, size: tuple, bit_rate: int
) -> None:
    sent = list(range(990, 1080))
    path = tmp_path / f"marks.{ext}"
    encode(path, codec, sent, size, bit_rate)
    assert read_counters(path) == sent
    marks = read_marks(path)
    assert marks[0].keyframe and gaps([m.counter for m in marks if m.counter is not None]) == []


def test_damaged_or_foreign_frames_read_as_none(tmp_path: Path) -> None:
    luma = render_luma(4242, 320, 240)
    flipped = luma.copy()
    flipped[10:30, 3 * 320 // 12 + 5 : 4 * 320 // 12 - 5] ^= BLACK ^ WHITE  # one cell inverted
    assert read_counter(flipped) is None
    assert read_counter(np.full((240, 320), 128, np.uint8)) is None  # gray: ambiguous cells
    assert read_counter(np.random.default_rng(1).integers(0, 256, (240, 320), dtype=np.uint8)) is None
    path = tmp_path / "plain.webm"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((360, 320), 128, np.uint8), "yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ValueError, match="3 of 3 frames"):
        read_counters(path)


def test_an_unreadable_frame_is_pinned_only_where_one_counter_fits() -> None:
    def marks(*counters: int | None) -> list[FrameMark]:
        return [FrameMark(None, c, False) for c in counters]

    assert pinned_counters(marks(4, None, 6, 7)) == [4, 5, 6, 7]
    # Two counters missing, a repeat, a leading or trailing blur: nothing is guessed.
    assert pinned_counters(marks(4, None, 7)) == [4, None, 7]
    assert pinned_counters(marks(4, None, 4)) == [4, None, 4]
    assert pinned_counters(marks(None, 5, None)) == [None, 5, None]
    assert pinned_counters(marks(4, None, None, 7)) == [4, None, None, 7]


def test_patterns_keep_the_counter_readable() -> None:
    pattern = parse_pattern(["black:5-6", "noise:8-8"], 320, 240)
    assert pattern is not None and pattern(4) is None
    for index in (5, 6, 8):
        background = pattern(index)
        assert background is not None
        assert read_counter(render_luma(index, 320, 240, background)) == index
    with pytest.raises(ValueError):
        parse_pattern(["blue:1-2"], 320, 240)
    assert counter_ranges([0, 1, 2, 5, 6, 9]) == [[0, 2], [5, 6], [9, 9]]
    assert expand_ranges(counter_ranges([0, 1, 2, 5, 6, 9])) == [0, 1, 2, 5, 6, 9]


@pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")
def test_network_namespace_is_private_and_removed() -> None:
    with network_namespace(subnet=7) as ns:
        assert ns.address == "10.200.7.1" and ns.path.exists()
        assert f"{ns.address}/24" in ns.addresses()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as outside, pytest.raises(OSError):
            outside.bind((ns.address, 0))  # not an address of the host
        with ns.entered():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as inside:
                inside.bind((ns.address, 0))
            links = ns.run(["ip", "-br", "link"]).stdout
            assert "jv0" in links and "eth0" not in links
        with open("/proc/thread-self/ns/net") as mine, open(ns.path) as theirs:  # back where we were
            assert os.fstat(mine.fileno()).st_ino != os.fstat(theirs.fileno()).st_ino
    assert not ns.path.exists()
