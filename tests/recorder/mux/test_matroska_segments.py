"""Segments written by CallVault's Matroska/WebM muxer, read back by independent readers: PyAV
(FFmpeg's demuxer), Debian's ffprobe and ffmpeg's decoders, and the test's own EBML walker. Every frame
must come back with its bytes, keyframe flag and time in ms, for every codec."""

from __future__ import annotations

import hashlib
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest
from media import ffprobe_errors
from mkv_reader import read_layout
from segment_helpers import CODECS, stored, timeline, to_ms, write_segment

from recorder.assembly.pipeline import SegmentStart
from recorder.models import Codec
from recorder.mux.matroska import ClusterMuxer
from recorder.mux.matroska_writer import track_params
from recorder.mux.track_writer import sha256_file


def ffprobe_packets(path: Path) -> list[dict[str, str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "0", "-show_data_hash", "SHA256",
         "-show_entries", "packet=pts,flags,size,data_hash", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    packets: list[dict[str, str]] = json.loads(out)["packets"]
    return packets


@pytest.mark.parametrize("codec", list(CODECS))
def test_segment_reads_back_frame_for_frame(codec: str, references: dict, tmp_path: Path) -> None:
    ref = references[codec]
    clock = 48000 if codec == "opus" else 90000
    pts = timeline(len(ref.frames), clock)
    video = codec != "opus"
    start = SegmentStart(320 if video else None, 240 if video else None, ref.extradata)
    info = write_segment(tmp_path, codec, ref.frames, ref.keyframes, pts, start)
    path = tmp_path / info.path

    # The summary's facts about the file are the file's.
    assert info.index == 0 and info.frames == len(ref.frames)
    assert (info.first_rtp_timestamp, info.last_rtp_timestamp) == (pts[0] + 7, pts[-1] + 7)
    assert info.size == path.stat().st_size and info.sha256 == sha256_file(path)

    want_data = [stored(codec, f) for f in ref.frames]
    want_ms = [to_ms(p, clock) for p in pts]

    # PyAV (FFmpeg's matroska demuxer).
    with av.open(str(path)) as container:
        stream = container.streams[0]
        ctx = stream.codec_context
        assert ctx.name == codec
        if video:
            assert (ctx.width, ctx.height) == (320, 240)
        else:
            assert (ctx.sample_rate, ctx.channels) == (48000, 2)
            assert bytes(ctx.extradata or b"") == ref.extradata
        if codec == "h264":
            assert bytes(ctx.extradata or b"")[:1] == b"\x01"  # an AVCDecoderConfigurationRecord
        packets = [p for p in container.demux(stream) if p.size]
        assert [bytes(p) for p in packets] == want_data
        assert [bool(p.is_keyframe) for p in packets] == ref.keyframes
        assert all(p.time_base == Fraction(1, 1000) for p in packets)
        assert [p.pts for p in packets] == want_ms

    # Debian's ffprobe, packet by packet.
    probed = ffprobe_packets(path)
    assert [p["data_hash"] for p in probed] == ["SHA256:" + hashlib.sha256(d).hexdigest() for d in want_data]
    assert [p["flags"].startswith("K") for p in probed] == ref.keyframes
    assert [int(p["pts"]) for p in probed] == want_ms

    # ffmpeg decodes it without a complaint.
    assert ffprobe_errors(path) == ""

    # The layout: a streamable Segment, 1 ms scale, clusters by the rules.
    layout = read_layout(path.read_bytes())
    assert layout.segment_unknown_size and layout.timestamp_scale == 1_000_000
    assert [b.data for b in layout.blocks] == want_data
    assert [b.timestamp_ms for b in layout.blocks] == want_ms
    previous_start = None
    for cluster in layout.clusters:
        first = cluster.blocks[0]
        assert first.relative == 0 and cluster.timestamp_ms == first.timestamp_ms
        if previous_start is not None:
            # A cluster starts only where it must: a video keyframe or one second after the last start.
            assert (video and first.keyframe) or first.timestamp_ms - previous_start >= 1000
        for block in cluster.blocks[1:]:
            assert 0 <= block.relative < 1000
            assert not (video and block.keyframe), "a video keyframe starts its cluster"
        previous_start = cluster.timestamp_ms
    assert len(layout.clusters) >= 4


def test_video_size_unknown_is_left_out_and_still_decodes(references: dict, tmp_path: Path) -> None:
    ref = references["vp8"]
    pts = timeline(len(ref.frames), 90000)
    info = write_segment(tmp_path, "vp8", ref.frames, ref.keyframes, pts, SegmentStart(None, None, b""))
    path = tmp_path / info.path
    with av.open(str(path)) as container:
        assert [bytes(p) for p in container.demux(container.streams[0]) if p.size] == ref.frames
    assert ffprobe_errors(path) == ""


def test_clusters_close_on_time_keyframes_and_size() -> None:
    muxer = ClusterMuxer(video=True, cluster_ms=1000, cluster_bytes=10_000)
    assert muxer.flush() is None
    assert muxer.add(b"k" * 10, 0, True) is None  # the first block opens the cluster
    assert muxer.add(b"d" * 10, 999, False) is None
    first = muxer.add(b"d" * 10, 1000, False)  # one second after the cluster's start
    assert first is not None and len(read_layout(_wrap(first)).blocks) == 2
    second = muxer.add(b"k" * 10, 1001, True)  # a keyframe
    assert second is not None and len(read_layout(_wrap(second)).blocks) == 1
    assert muxer.add(b"x" * 20_000, 1002, False) is None
    big = muxer.add(b"d" * 10, 1003, False)  # the open cluster passed 10,000 bytes
    assert big is not None and [b.relative for b in read_layout(_wrap(big)).blocks] == [0, 1]
    assert muxer.pending
    last = muxer.flush()
    assert last is not None and read_layout(_wrap(last)).clusters[0].timestamp_ms == 1003
    assert not muxer.pending

    audio = ClusterMuxer(video=False)
    assert audio.add(b"a", 0, True) is None and audio.add(b"a", 20, True) is None  # keyframes don't split
    with pytest.raises(ValueError):
        ClusterMuxer(video=True, cluster_ms=40_000)


def _wrap(cluster: bytes) -> bytes:
    """A cluster inside a minimal EBML header + unknown-size Segment, for the reader."""
    return b"\x1a\x45\xdf\xa3\x80" + b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff" + cluster


def test_h264_without_usable_parameter_sets_is_kept_in_annex_b(
    references: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken SPS must not cost the recording: no CodecPrivate, frames stay Annex B, still decodable
    (the keyframes carry their SPS and PPS in band)."""
    ref = references["h264"]
    pps_only = b"\x00\x00\x00\x01" + bytes.fromhex("68ce3c80")
    pts = timeline(len(ref.frames), 90000)
    info = write_segment(tmp_path, "h264", ref.frames, ref.keyframes, pts, SegmentStart(320, 240, pps_only))
    assert "kept in Annex B" in caplog.text
    path = tmp_path / info.path
    assert track_params(Codec.H264, 90000, 320, 240, pps_only).codec_private == b""
    with av.open(str(path)) as container:
        assert [bytes(p) for p in container.demux(container.streams[0]) if p.size] == ref.frames
    assert ffprobe_errors(path) == ""
