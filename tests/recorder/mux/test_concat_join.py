"""The byte-level join (recorder/mux/concat.py) against the FFmpeg remux it replaces: the same frames
(payload, time, keyframe flag), counts and duration, a file that ffprobe and mkvmerge read without a
word, Cues that mkvinfo lists and ffmpeg seeks with; and the FFmpeg remux whenever a segment is not
exactly what CallVault's muxer writes (cut short, another muxer's, another codec, MP4)."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from media import read_packets
from mkv_reader import read_layout
from segment_helpers import CODECS, START_PTS, timeline, write_segment

from recorder.assembly.pipeline import SegmentStart
from recorder.codecs.opus import packet_samples
from recorder.mux.concat import Concat, NotJoinableError
from recorder.mux.containers import Container, segment_format
from recorder.mux.join import JoinResult, join_segments, remux_segments, segment_files
from recorder.mux.track_writer import sha256_file

TIMEOUT = 60


def steady(count: int, clock: int) -> list[int]:
    """30 frames/s or 20 ms of audio, with the small unevenness of a real sender's clock."""
    step = clock // 30 if clock == 90000 else 960
    return [START_PTS + i * step + (i % 4) * 7 for i in range(count)]


def record(
    folder: Path, codec: str, ref: Any, pts: list[int], splits: list[int], frames: list[int] | None = None
) -> list[Path]:
    """The track's segments as TrackWriter writes them, a new segment at each index of `splits` (into
    `frames`, the reference frames recorded in order, all by default)."""
    video = codec != "opus"
    order = frames if frames is not None else list(range(len(pts)))
    start = SegmentStart(320 if video else None, 240 if video else None, ref.extradata)
    for a, b in pairwise([0, *splits, len(order)]):
        picked = order[a:b]
        write_segment(
            folder,
            codec,
            [ref.frames[i] for i in picked],
            [ref.keyframes[i] for i in picked],
            [pts[k] for k in range(a, b)],
            start,
        )
    (seg_dir,) = folder.glob("*.segments")
    return segment_files(seg_dir)


def both(segments: list[Path], out: Path, codec: str) -> tuple[JoinResult, JoinResult]:
    """(the join as the recorder does it, FFmpeg's remux) of the same segments."""
    container = segment_format(CODECS[codec]).container
    ext = segments[0].suffix
    return (
        join_segments(segments, out / f"fast{ext}", container),
        remux_segments(segments, out / f"remux{ext}", container),
    )


def described(result: JoinResult) -> tuple[object, ...]:
    """What a JoinResult tells, but for the file's name and hash."""
    return (
        result.packets,
        result.keyframes,
        result.skipped,
        [(s.path, s.packets, s.first_pts, s.last_pts, s.truncated, s.error) for s in result.segments],
    )


def ffprobe_packets(path: Path) -> tuple[list[str], str]:
    """(pts_time,flags,size of each packet, what ffprobe said on stderr) by Debian's ffprobe."""
    run = subprocess.run(
        ["ffprobe", "-v", "warning", "-select_streams", "0", "-show_entries", "packet=pts_time,flags,size",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=TIMEOUT, check=True,
    )  # fmt: skip
    return run.stdout.split(), run.stderr


def mkvmerge(path: Path) -> dict:
    run = subprocess.run(
        ["mkvmerge", "-J", str(path)], check=False, capture_output=True, text=True, timeout=TIMEOUT
    )
    return json.loads(run.stdout)


def assert_same_frames(fast: JoinResult, remux: JoinResult, audio: bool) -> None:
    got, want = read_packets(fast.path), read_packets(remux.path)
    assert got.data == want.data and got.keyframes == want.keyframes and got.pts_seconds == want.pts_seconds
    assert fast.packets == len(got.data) and described(fast) == described(remux)
    assert fast.sha256 == sha256_file(fast.path) and remux.sha256 is None
    # The end of the last frame: its time plus its length (Opus: by its TOC byte, 20 ms here; video:
    # 1/frame rate rounded down to the ms, as FFmpeg lasts a frame). FFmpeg's remux counts that length
    # only when it had guessed the frame rate before reading the last frame (a last segment of more than
    # some 40 frames), so it says the end or the start of the last frame.
    last = got.pts_seconds[-1]
    assert fast.duration == pytest.approx(last + (0.020 if audio else 0.033), abs=1e-9)
    assert remux.duration is not None
    assert min(abs(remux.duration - end) for end in (last, fast.duration)) <= 0.001


@pytest.mark.parametrize("times", ["steady", "gap"])
@pytest.mark.parametrize("codec", ["vp8", "h264", "opus"])
def test_the_join_holds_the_frames_ffmpeg_joins(
    codec: str, times: str, references: dict, tmp_path: Path
) -> None:
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    # "gap": a 50 s hole after frame 40, more than a block's 16-bit offset from its Cluster.
    pts = (steady if times == "steady" else timeline)(len(ref.frames), clock)
    splits = [30, 60] if codec != "opus" else [50, 100]  # video segments start at keyframes
    segments = record(tmp_path / "rec", codec, ref, pts, splits)
    fast, remux = both(segments, tmp_path, codec)
    assert_same_frames(fast, remux, codec == "opus")
    assert fast.packets == len(ref.frames) and fast.skipped == 0

    got, said = ffprobe_packets(fast.path)
    assert got == ffprobe_packets(remux.path)[0] and len(got) == len(ref.frames)
    if not (codec == "h264" and times == "gap"):
        # (FFmpeg's frame-rate guess for H.264 notes a 50 s jump within its first frames as a "DTS
        # discontinuity", in the segment itself as much; the remux hides it with a DefaultDuration.)
        assert said == ""
    info = mkvmerge(fast.path)
    assert info["errors"] == [] and info["warnings"] == []
    assert info["container"]["properties"]["duration"] == pytest.approx(fast.duration * 1e9, abs=1e3)


def mkvinfo_index(path: Path) -> tuple[int, set[int], list[tuple[str, int]], list[tuple[str, bool, int]]]:
    """(Segment data start, Cluster offsets, Cues as (time, cluster position), blocks as (time, keyframe,
    offset of their Cluster)) as mkvinfo lists them."""
    run = subprocess.run(
        ["mkvinfo", "-a", "-p", str(path)], check=True, capture_output=True, text=True, timeout=TIMEOUT
    )
    segment_data = 0
    clusters: set[int] = set()
    cues: list[tuple[str, int]] = []
    blocks: list[tuple[str, bool, int]] = []
    cue_time = ""
    cluster = -1
    for line in run.stdout.splitlines():
        at = int(line.rsplit(" at ", 1)[1], 16) if " at 0x" in line else -1
        if line.startswith("+ Segment:"):
            segment_data = at + 12  # 4-octet ID, 8-octet size
        elif line.startswith("|+ Cluster"):
            cluster = at
            clusters.add(at)
        elif "+ Simple block:" in line:
            blocks.append((line.split("timestamp ")[1].split()[0], "block: key," in line, cluster))
        elif "+ Cue time:" in line:
            cue_time = line.split("Cue time: ")[1].split()[0]
        elif "+ Cue cluster position:" in line:
            cues.append((cue_time, int(line.split("position: ")[1].split()[0])))
    assert "Duration:" in run.stdout and "|+ Cues" in run.stdout and "|+ Seek head" in run.stdout
    return segment_data, clusters, cues, blocks


@pytest.mark.parametrize("codec", ["vp8", "h264", "opus"])
def test_the_joined_file_has_cues_that_ffmpeg_seeks_with(
    codec: str, references: dict, tmp_path: Path
) -> None:
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    segments = record(tmp_path / "rec", codec, ref, steady(len(ref.frames), clock), [30, 60])
    fast, remux = both(segments, tmp_path, codec)
    segment_data, clusters, cues, blocks = mkvinfo_index(fast.path)
    # As FFmpeg's muxer indexes: each video keyframe; audio alone, the first block of each Cluster.
    if codec == "opus":
        want = [(t, c) for i, (t, _, c) in enumerate(blocks) if i == 0 or blocks[i - 1][2] != c]
    else:
        want = [(t, c) for t, key, c in blocks if key]
    assert [(t, segment_data + c) for t, c in cues] == want and len(want) >= 3
    assert {c for _, c in want} <= clusters
    if codec == "opus":
        return
    # ffmpeg -ss seeks by the Cues to the keyframe before, then decodes to the time asked: the same
    # picture from either file.
    frames = []
    for path in (fast.path, remux.path):
        run = subprocess.run(
            ["ffmpeg", "-v", "error", "-ss", "2.1", "-i", str(path), "-frames:v", "1", "-f", "framemd5", "-"],
            capture_output=True, text=True, timeout=TIMEOUT, check=True,
        )  # fmt: skip
        frames.append([line for line in run.stdout.splitlines() if not line.startswith("#")])
    assert frames[0] == frames[1] and len(frames[0]) == 1


@pytest.mark.parametrize("codec", ["vp8", "opus"])
def test_frames_whose_time_does_not_increase_are_dropped_as_ffmpeg_drops_them(
    codec: str, references: dict, tmp_path: Path
) -> None:
    """A segment that starts 1.5 s before the one before it ended (its first Cluster goes whole, its second
    loses its first blocks) and a frame at the time of the one before it (its Cluster is rewritten
    without it)."""
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    pts = steady(len(ref.frames), clock)
    split = 30 if codec != "opus" else 50  # a keyframe; 1 s of Opus
    pts = pts[:split] + [p - clock * 3 // 2 for p in pts[split:]]
    pts[-5] = pts[-6]  # the same millisecond
    segments = record(tmp_path / "rec", codec, ref, pts, [split])
    fast, remux = both(segments, tmp_path, codec)
    assert_same_frames(fast, remux, codec == "opus")
    assert fast.skipped == remux.skipped and fast.skipped > 1
    # Both ways of dropping happened: whole Clusters left out, and a Cluster rewritten.
    joined = read_layout(fast.path.read_bytes()).clusters
    written = [c for seg in segments for c in read_layout(seg.read_bytes()).clusters]
    assert len(joined) < len(written)
    assert any(
        len(c.blocks) not in {len(w.blocks) for w in written if w.timestamp_ms == c.timestamp_ms}
        for c in joined
    )
    assert ffprobe_packets(fast.path)[1] == ""
    info = mkvmerge(fast.path)
    assert info["errors"] == [] and info["warnings"] == []


def cut_mid_cluster(segments: list[Path]) -> None:
    data = segments[-1].read_bytes()
    segments[-1].write_bytes(data[: len(data) - 100])


def foreign(segments: list[Path]) -> None:
    """The first segment as FFmpeg's muxer writes it (SeekHead, known sizes, Cues, Tags)."""
    remuxed = remux_segments(segments[:1], segments[0].with_name("ffmpeg.webm"), Container.WEBM)
    remuxed.path.replace(segments[0])


def with_void(segments: list[Path]) -> None:
    """An element CallVault never writes (a 2-octet Void) after the last Cluster."""
    segments[-1].write_bytes(segments[-1].read_bytes() + b"\xec\x80")


@pytest.mark.parametrize("damage", [cut_mid_cluster, foreign, with_void])
def test_segments_not_exactly_callvaults_are_remuxed_by_ffmpeg(
    damage: Callable[[list[Path]], None], references: dict, tmp_path: Path
) -> None:
    ref = references["vp8"]
    segments = record(tmp_path / "rec", "vp8", ref, steady(len(ref.frames), 90000), [30, 60])
    damage(segments)
    fast, remux = both(segments, tmp_path, "vp8")
    assert fast.sha256 is None  # not written by concat.py
    assert read_packets(fast.path).data == read_packets(remux.path).data
    assert described(fast) == described(remux) and fast.duration == remux.duration


def test_another_codec_or_mp4_is_remuxed_by_ffmpeg(references: dict, tmp_path: Path) -> None:
    vp8 = record(tmp_path / "a", "vp8", references["vp8"], steady(90, 90000), [])
    vp9 = record(tmp_path / "b", "vp9", references["vp9"], steady(90, 90000), [])
    concat = Concat()
    concat.add(vp8[0].read_bytes())
    with pytest.raises(NotJoinableError, match="codec V_VP9 after V_VP8"):
        concat.add(vp9[0].read_bytes())
    assert join_segments(vp8 + vp9, tmp_path / "mixed.webm", Container.WEBM).sha256 is None
    mp4 = join_segments(vp9, tmp_path / "vp9.mp4", Container.MP4)
    assert mp4.sha256 is None and mp4.packets == 90


def test_opus_packet_lengths_follow_the_toc_byte() -> None:
    """RFC 6716 §3.1: config (5 bits) gives the frame size, code (2 bits) the frame count."""
    assert packet_samples(bytes([1 << 3])) == 960  # SILK NB 20 ms, one frame
    assert packet_samples(bytes([(31 << 3) | 1])) == 1920  # CELT FB 20 ms, two frames
    assert packet_samples(bytes([(16 << 3) | 3, 4])) == 480  # CELT NB 2.5 ms, four frames (code 3)
    assert packet_samples(bytes([(15 << 3) | 2])) == 1920  # hybrid FB 20 ms, two frames
    assert packet_samples(b"") is None and packet_samples(bytes([(16 << 3) | 3])) is None  # too short to tell


def test_webm_segments_join_into_a_matroska_file(references: dict, tmp_path: Path) -> None:
    """recorder.container = matroska for VP8: the segments stay WebM, the track file says Matroska."""
    segments = record(tmp_path / "rec", "vp8", references["vp8"], steady(90, 90000), [30, 60])
    fast = join_segments(segments, tmp_path / "fast.mkv", Container.MATROSKA)
    remux = remux_segments(segments, tmp_path / "remux.mkv", Container.MATROSKA)
    assert_same_frames(fast, remux, audio=False)
    doc_types = [
        line.split(": ")[1]
        for line in subprocess.run(
            ["mkvinfo", str(fast.path)], capture_output=True, text=True, timeout=TIMEOUT, check=True
        ).stdout.splitlines()
        if "Document type:" in line
    ]
    assert doc_types == ["matroska"]
    info = mkvmerge(fast.path)
    assert info["container"]["type"] == "Matroska" and info["errors"] == [] and info["warnings"] == []


@pytest.mark.parametrize("codec", ["vp8", "opus"])
def test_damaged_bytes_are_refused_never_crash_the_parser(
    codec: str, references: dict, tmp_path: Path
) -> None:
    """Seeded flips, cuts and splices of a real segment: concat.py plans them or refuses them with
    NotJoinableError (the join then remuxes), nothing else."""
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    (segment,) = record(tmp_path / "rec", codec, ref, steady(len(ref.frames), clock), [])
    data = segment.read_bytes()
    rng = random.Random(9559)
    refused = 0
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(damaged))
            kind = rng.randrange(3)
            if kind == 0:
                damaged[at] = rng.randrange(256)
            elif kind == 1:
                del damaged[at:]
            else:
                damaged[at:at] = rng.randbytes(rng.randint(1, 9))
            if not damaged:
                damaged = bytearray(b"\x1a")
        concat = Concat()
        try:
            concat.add(bytes(damaged))
            concat.finish("webm")
        except NotJoinableError:
            refused += 1
    assert refused > 100  # most damage is seen; a flip inside a frame's payload is not (nor by FFmpeg)
