"""What other tools read in the track files (issue 19, item 3), checked with mkvtoolnix's `mkvmerge -J`:
the one track of every joined file is its default track (FlagDefault 1, as in the segments and as mkvmerge
writes; PyAV left it 0), and an Opus track carries the same pre-skip and CodecDelay as libavformat writes
for the same RTP input (ffmpeg's own RTP -> WebM recording, side by side): RTP does not signal the
sender's encoder delay, so both say 0 rather than invent one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from janus_fixture import free_udp_port_pair
from media import encode_reference, rtp_sender, sdp_for

from recorder.config import RecorderSettings
from recorder.mux.workers import MuxWorkers
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

pytestmark = pytest.mark.skipif(shutil.which("mkvmerge") is None, reason="mkvtoolnix is not installed")


def tracks(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["mkvmerge", "-J", str(path)], capture_output=True, text=True, check=True, timeout=30
    )
    found: list[dict[str, Any]] = json.loads(out.stdout)["tracks"]
    return found


def ffmpeg_recording(sdp: Path, out: Path) -> subprocess.Popen[bytes]:
    """ffmpeg recording what `sdp` describes, unchanged (`-c copy`), for 4 s."""
    return subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-protocol_whitelist", "file,udp,rtp",
         "-i", str(sdp), "-c", "copy", "-t", "4", "-y", str(out)],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def opus_head(track: dict[str, Any]) -> bytes:
    return bytes.fromhex(track["properties"]["codec_private_data"])


async def test_joined_files_have_a_default_track_and_opus_timing_like_libavformat(tmp_path: Path) -> None:
    refs = {c: encode_reference(c, tmp_path, 2.0) for c in ("opus", "vp8")}
    ports = {c: free_udp_port_pair() for c in refs}
    specs = parse_sdp(sdp_for([("opus", ports["opus"], 111), ("vp8", ports["vp8"], 96)]))
    ff_port = free_udp_port_pair()
    (tmp_path / "ff.sdp").write_text(sdp_for([("opus", ff_port, 111)]))
    ffmpeg = ffmpeg_recording(tmp_path / "ff.sdp", tmp_path / "ffmpeg.webm")
    workers = MuxWorkers(1)
    session = RecordingSession(tmp_path / "rec", RecorderSettings(segment_seconds=1.0), workers)
    try:
        for spec in specs:
            await session.add_track(spec)
        await asyncio.sleep(1.0)  # ffmpeg opens its socket
        senders = [
            rtp_sender(refs["opus"], ports["opus"], 111),
            rtp_sender(refs["vp8"], ports["vp8"], 96),
            rtp_sender(refs["opus"], ff_port, 111),
        ]
        for s in senders:
            await asyncio.to_thread(s.wait, 60)
        await asyncio.sleep(0.3)
    finally:
        summaries = await session.stop()
        workers.shutdown()
        await asyncio.to_thread(ffmpeg.wait, 30)
    folder = tmp_path / "rec"
    by_codec = {s.codec.value: s for s in summaries}
    for summary in summaries:
        assert summary.file is not None
        (track,) = tracks(folder / summary.file)
        assert track["properties"]["default_track"] is True, (summary.file, track["properties"])
        (segment,) = tracks(folder / summary.segments[0].path)
        assert segment["properties"]["default_track"] is True
    (ours,) = tracks(folder / str(by_codec["OPUS"].file))
    (theirs,) = tracks(tmp_path / "ffmpeg.webm")
    assert ours["properties"].get("codec_delay") == theirs["properties"].get("codec_delay")
    pre_skip = slice(10, 12)  # OpusHead (RFC 7845 §5.1)
    assert opus_head(ours)[:8] == b"OpusHead" and opus_head(ours)[pre_skip] == opus_head(theirs)[pre_skip]
