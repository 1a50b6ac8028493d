"""Fixtures for the segment muxer tests: real frames from Debian's ffmpeg (encoded once per session),
and mkv_reader.py loaded under that name (no __init__.py files)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
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


_load("mkv_reader")
_load("segment_helpers")

from media import encode_reference, nal_units, read_packets  # noqa: E402

START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True)
class Reference:
    codec: str
    frames: list[bytes]  # as the recorder hands them to the muxer (H.264: Annex B)
    keyframes: list[bool]
    extradata: bytes  # as SegmentStart carries it (H.264: Annex B SPS + PPS; Opus: OpusHead)


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Reference]:
    from recorder.codecs.opus import opus_head

    folder = tmp_path_factory.mktemp("refs")
    refs = {}
    for codec in ("vp8", "vp9", "h264", "opus"):
        packets = read_packets(encode_reference(codec, folder, 3.0))
        extradata = b""
        if codec == "h264":
            nals = nal_units(packets.data[0])
            sps = next(n for n in nals if n[0] & 0x1F == 7)
            pps = next(n for n in nals if n[0] & 0x1F == 8)
            extradata = START_CODE + sps + START_CODE + pps
        elif codec == "opus":
            extradata = opus_head(2)
        refs[codec] = Reference(codec, packets.data, packets.keyframes, extradata)
    return refs
