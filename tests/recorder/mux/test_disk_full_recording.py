"""`callvault record-rtp` onto a disk that fills mid-call: a real tmpfs of 2 MiB (small_disk.py) with a
filler leaving room for about 4 s of the 8 s call, so the kernel answers ENOSPC; nothing is injected.

The track's summary must say the truth, `failed` with an error naming the full disk, and list every
segment written before it filled (the one open then cut back to its whole Clusters); nothing
half-written may stay (no .part or temporary file, no empty file, no partial Cluster); and what was
written is a bit-exact prefix of what was sent.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import encode_reference, ffprobe_errors, read_packets, rtp_sender, sdp_for
from mkv_reader import read_layout
from small_disk import FILLER, fill, small_disk

from recorder.commands.demo import free_port_pair
from recorder.summaries import RESERVE_BYTES

CALLVAULT = [sys.executable, "-m", "recorder.cli"]
ROOM = 360_000  # bytes free for the recording: two 2 s segments of the 600 kbit/s call, and a bit


def wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)


@pytest.mark.slow
def test_a_recording_whose_disk_fills_is_failed_and_keeps_what_was_written(tmp_path: Path) -> None:
    ref = encode_reference("vp8", tmp_path, 8.0)
    sent = read_packets(ref).data
    port = free_port_pair()
    sdp = tmp_path / "in.sdp"
    sdp.write_text(sdp_for([("vp8", port, 96)]))
    log_path = tmp_path / "recorder.log"
    with small_disk(tmp_path) as disk, log_path.open("wb") as log:
        free = fill(disk, leave=ROOM)
        folder = disk / "out" / "r"
        rec = subprocess.Popen(
            [*CALLVAULT, "record-rtp", "--sdp", str(sdp), "--out", str(disk / "out"), "--name", "r",
             "--segment-seconds", "2"],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        sender = None
        try:
            wait_for(folder / "video-0.json", 20)
            sender = rtp_sender(ref, port)
            sender.wait(timeout=30)
            time.sleep(0.5)
            rec.send_signal(signal.SIGTERM)
            stdout, _ = rec.communicate(timeout=60)
        finally:
            for proc in (rec, sender):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
        stderr = log_path.read_text()
        assert rec.returncode == 1, stderr
        assert "Traceback" not in stderr and "video-0: VP8 failed" in stdout

        summary = json.loads((folder / "video-0.json").read_text())
        assert summary["state"] == "failed"
        assert "disk full (ENOSPC)" in summary["error"]

        # Nothing half-written: no .part, no temporary file, no empty file.
        files = sorted(p for p in disk.rglob("*") if p.is_file() and p.name != FILLER)
        assert [p for p in files if p.name.endswith((".part", ".tmp")) or p.stat().st_size == 0] == []

        # Every segment on disk is listed, whole (it ends with a whole Cluster), decodes, and matches.
        on_disk = sorted((folder / "video-0.segments").iterdir())
        assert len(on_disk) >= 2
        assert [s["path"] for s in summary["segments"]] == [str(p.relative_to(folder)) for p in on_disk]
        recorded: list[bytes] = []
        for seg, path in zip(summary["segments"], on_disk, strict=True):
            data = path.read_bytes()
            assert seg["size"] == len(data) and seg["sha256"] == hashlib.sha256(data).hexdigest()
            layout = read_layout(data)
            assert layout.clusters and layout.clusters[-1].end == len(data), f"{path.name}: a partial Cluster"
            assert seg["frames"] == len(layout.blocks)
            assert ffprobe_errors(path) == ""
            recorded += [b.data for b in layout.blocks]
        assert recorded == sent[: len(recorded)]  # VP8 frames are stored as sent
        assert summary["frames"] == len(recorded) and summary["frames_unwritten"] > 0
        assert summary["frames"] + summary["frames_unwritten"] <= len(sent)
        # What was written before the disk filled is kept: the segments fill the room the recording had,
        # but for the space set aside for the summary and the Cluster whose write failed (≤ about 1 s).
        assert sum(p.stat().st_size for p in on_disk) >= free - RESERVE_BYTES - 160_000

        if summary["file"] is not None:  # joined after all: then it holds exactly the segments' frames
            assert read_packets(folder / summary["file"]).data == recorded
