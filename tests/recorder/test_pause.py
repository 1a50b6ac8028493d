"""Pause and resume (PCI DSS): the sender shows a distinct pattern (solid red) only while the call is
paused; no stored byte may decode to it, the pause is in the track's summary, and video returns from a
keyframe within 1 s of resuming."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import av
import pytest
from media import SECRET_NORMAL as NORMAL
from media import SECRET_SECONDS as SECRET
from media import encode_with_secret, first_packet, red_frames, rtp_sender, sdp_for

from recorder.commands.demo import free_port_pair
from recorder.config import RecorderSettings
from recorder.mux.workers import MuxWorkers
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

pytestmark = pytest.mark.slow


async def test_nothing_of_the_paused_interval_is_stored(tmp_path: Path) -> None:
    reference = encode_with_secret(tmp_path)
    assert red_frames(reference) >= 55  # the pattern is there to be caught
    port = free_port_pair()
    (spec,) = parse_sdp(sdp_for([("vp8", port, 96)]))
    workers = MuxWorkers(1)
    session = RecordingSession(tmp_path / "rec", RecorderSettings(segment_seconds=1.0), workers)
    await session.add_track(spec)
    sender = rtp_sender(reference, port)
    started = time.monotonic()
    first = await first_packet(session)  # the red stretch is timed from the media, not ffmpeg's spawn
    loop = asyncio.get_running_loop()
    await asyncio.sleep(first + NORMAL - 0.25 - loop.time())
    session.pause(by="agent-7", reason="card number")
    await asyncio.sleep(first + NORMAL + SECRET + 0.25 - loop.time())
    resumed_at = time.time()
    session.resume()
    await asyncio.to_thread(sender.wait, 30)
    assert time.monotonic() - started < NORMAL * 2 + SECRET + 3
    await asyncio.sleep(0.3)
    (summary,) = await session.stop()
    workers.shutdown()

    folder = tmp_path / "rec"
    assert summary.file is not None
    files = [folder / summary.file, *(folder / s.path for s in summary.segments)]
    assert all(red_frames(f) == 0 for f in files)
    (pause,) = summary.pauses
    assert (pause.by, pause.reason) == ("agent-7", "card number") and pause.end_time == pytest.approx(
        resumed_at
    )
    assert summary.packets_paused > 0 and summary.packets_lost == 0
    # Video is back within 1 s of resuming, starting at a keyframe.
    with av.open(str(folder / summary.file)) as container:
        times = [float(p.pts * p.time_base) for p in container.demux(video=0) if p.size]
    gap = max(b - a for a, b in itertools.pairwise(times))
    assert SECRET <= gap <= SECRET + 0.5 + 1.0
