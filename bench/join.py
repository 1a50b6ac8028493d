"""Joining a track's segments into its track file: CallVault's byte-level join (recorder/mux/concat.py)
next to the PyAV remux it replaced (`remux_segments`) and FFmpeg's own concat (`ffmpeg -f concat -c copy`,
a process per track, for scale).

    .venv/bin/python bench/join.py [--seconds 10] [--segment-seconds 4] [--tracks 20] [--runs 3]

The tracks are what a call leaves: VP8 (~600 kbit/s, a keyframe a second) and Opus (48 kbit/s) that
Debian's ffmpeg encoded, written through TrackWriter into segments of --segment-seconds that start at
keyframes, as the recorder writes them (the files are in the page cache, as right after a call). Each
run joins --tracks copies of each track one after the other on one thread and prints milliseconds per
track: wall time, and CPU time of this process (the ffmpeg line: wall time only, the work is in a child).

Bounded: --runs x --tracks joins of each kind, files in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests" / "helpers"))

from media import encode_reference, read_packets  # noqa: E402

from recorder.assembly.pipeline import Frame, MuxItem, SegmentStart  # noqa: E402  (Frame: wherever it lives)
from recorder.codecs.opus import opus_head  # noqa: E402
from recorder.models import Codec, StreamSpec  # noqa: E402
from recorder.mux.containers import Container, segment_format  # noqa: E402
from recorder.mux.join import JoinResult, join_segments, remux_segments, segment_files  # noqa: E402
from recorder.mux.track_writer import TrackWriter, segments_dir  # noqa: E402

CLOCKS = {"vp8": 90000, "opus": 48000}
STEPS = {"vp8": 3000, "opus": 960}  # 30 frames/s, 20 ms


def record(folder: Path, codec: str, seconds: float, segment_seconds: float) -> list[Path]:
    """A track of `seconds` written as the recorder writes it, a new segment at the first keyframe (every
    Opus packet is one) after each --segment-seconds."""
    refs = folder.parent / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    packets = read_packets(encode_reference(codec, refs, seconds))
    video = codec == "vp8"
    spec = StreamSpec(
        name="video-0" if video else "audio-1",
        codec=Codec.VP8 if video else Codec.OPUS,
        payload_type=96,
        clock_rate=CLOCKS[codec],
        channels=1 if video else 2,
        port=0,
    )
    writer = TrackWriter(folder, spec, segment_format(spec.codec))
    start = SegmentStart(320 if video else None, 240 if video else None, b"" if video else opus_head(2))
    items: list[MuxItem] = []
    next_segment = 0.0
    for i, (data, key) in enumerate(zip(packets.data, packets.keyframes, strict=True)):
        pts = 90_000 + i * STEPS[codec]
        if key and i * STEPS[codec] / CLOCKS[codec] >= next_segment:
            items.append(start)
            next_segment += segment_seconds
        items.append(Frame(data, key, rtp_timestamp=pts, arrival_time=0.0, pts=pts))
    writer.write(items)
    writer.close()
    return segment_files(segments_dir(folder, spec.name))


def ffmpeg_concat(segments: list[Path], out: Path, container: Container) -> None:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in segments))
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
         "-f", container.value, str(out)],
        check=True, timeout=60,
    )  # fmt: skip


def measure(
    join: Callable[[list[Path], Path, Container], JoinResult | None],
    tracks: list[list[Path]],
    container: Container,
) -> tuple[float, float]:
    """(wall ms, CPU ms) per track of joining each of `tracks`."""
    outs = [segments[0].parent.parent / f"joined{segments[0].suffix}" for segments in tracks]
    wall, cpu = time.perf_counter(), time.process_time()
    for segments, out in zip(tracks, outs, strict=True):
        join(segments, out, container)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for out in outs:
        out.unlink()
    return wall * 1000 / len(tracks), cpu * 1000 / len(tracks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--segment-seconds", type=float, default=4.0)
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-join-") as tmp:
        work = Path(tmp)
        for codec in ("vp8", "opus"):
            first = record(work / codec / "0", codec, args.seconds, args.segment_seconds)
            tracks = [first]
            for n in range(1, args.tracks):
                shutil.copytree(work / codec / "0", work / codec / str(n))
                tracks.append([work / codec / str(n) / p.parent.name / p.name for p in first])
            container = segment_format(Codec.VP8 if codec == "vp8" else Codec.OPUS).container
            fast = join_segments(first, work / "check.webm", container)
            assert fast.sha256 is not None, "the byte-level join was not taken"
            size = sum(p.stat().st_size for p in first) / 1e6
            print(
                f"\n{codec}: {args.seconds:g} s track, {len(first)} segments, {size:.2f} MB, "
                f"{fast.packets} frames; ms per track (wall / CPU), {args.tracks} tracks a run"
            )
            for run in range(1, args.runs + 1):
                own = measure(join_segments, tracks, container)
                remux = measure(remux_segments, tracks, container)
                ffmpeg = measure(ffmpeg_concat, tracks, container)
                print(
                    f"  run {run}: byte-level {own[0]:6.2f} / {own[1]:6.2f}   "
                    f"PyAV remux {remux[0]:6.2f} / {remux[1]:6.2f}   "
                    f"ffmpeg -f concat {ffmpeg[0]:6.1f} / -   "
                    f"PyAV / byte-level {remux[0] / own[0]:5.1f}x wall, {remux[1] / max(own[1], 1e-9):5.1f}x CPU"
                )
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
