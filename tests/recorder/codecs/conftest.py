"""Fixtures for the depacketizer tests: real media encoded once per session. The encoders and the
test-side RTP packetizers live in codec_media.py, loaded here under that name (no __init__.py files)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


_load("codec_media")

from codec_media import EncodedFrame, encode_audio, encode_video  # noqa: E402


@pytest.fixture(scope="session")
def vp8_frames() -> list[EncodedFrame]:
    # Fixed keyframe spacing: libvpx's realtime mode may otherwise move keyframes when the CPU is busy.
    return encode_video(
        "libvpx", deadline="realtime", **{"cpu-used": "8", "kf-min-dist": "8", "kf-max-dist": "8"}
    )


@pytest.fixture(scope="session")
def vp9_frames() -> list[EncodedFrame]:
    return encode_video("libvpx-vp9", deadline="realtime", **{"cpu-used": "8"})


@pytest.fixture(scope="session")
def h264_frames() -> list[EncodedFrame]:
    return encode_video("libx264", preset="ultrafast", tune="zerolatency")


@pytest.fixture(scope="session")
def opus_stream() -> tuple[list[bytes], bytes]:
    return encode_audio()
