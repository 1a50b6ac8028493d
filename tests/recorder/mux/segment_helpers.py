"""Shared by the segment tests: a timeline with a long gap, what the container must hold for a frame,
and one segment written through TrackWriter."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from media import nal_units

from recorder.assembly.frame import Frame
from recorder.assembly.pipeline import MuxItem, SegmentStart
from recorder.models import Codec, SegmentInfo, StreamSpec
from recorder.mux.containers import segment_format
from recorder.mux.track_writer import TrackWriter

CODECS = {"vp8": Codec.VP8, "vp9": Codec.VP9, "h264": Codec.H264, "opus": Codec.OPUS}
GAP_AFTER = 40  # a 50 s hole in the timeline after this frame: longer than a block's 16-bit offset
START_PTS = 1_234_567


def timeline(count: int, clock: int) -> list[int]:
    """Presentation times in clock units: a late start, uneven steps, and a long gap."""
    step = clock // 30 if clock == 90000 else 960
    pts, out = START_PTS, []
    for i in range(count):
        out.append(pts)
        pts += step + (i % 4) * 7
        if i == GAP_AFTER:
            pts += 50 * clock
    return out


def to_ms(pts: int, clock: int) -> int:
    """Nearest millisecond, halves up."""
    return int(Fraction(pts * 1000, clock) + Fraction(1, 2))


def stored(codec: str, frame: bytes) -> bytes:
    """What the container must hold for a frame: the same bytes; for H.264 the same NAL units with
    4-byte length prefixes instead of start codes (RFC 9559 codec mapping, ISO/IEC 14496-15)."""
    if codec != "h264":
        return frame
    return b"".join(len(n).to_bytes(4, "big") + n for n in nal_units(frame))


def write_segment(
    folder: Path, codec: str, frames: list[bytes], keys: list[bool], pts: list[int], start: SegmentStart
) -> SegmentInfo:
    """One segment through TrackWriter, the interface the session uses, in a few batches."""
    c = CODECS[codec]
    spec = StreamSpec(
        name="audio-1" if c is Codec.OPUS else "video-0",
        codec=c,
        payload_type=96,
        clock_rate=48000 if c is Codec.OPUS else 90000,
        channels=2 if c is Codec.OPUS else 1,
        port=0,
    )
    writer = TrackWriter(folder, spec, segment_format(c))
    items: list[MuxItem] = [start]
    items += [
        Frame(d, k, rtp_timestamp=p + 7, arrival_time=0.0, pts=p)
        for d, k, p in zip(frames, keys, pts, strict=True)
    ]
    for i in range(0, len(items), 13):
        writer.write(items[i : i + 13])
    (info,) = writer.close()
    assert writer.close() == [info]  # idempotent
    return info
