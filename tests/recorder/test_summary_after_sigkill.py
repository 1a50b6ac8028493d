"""After a SIGKILL mid-call, the summary that recovery writes tells what the recovered file holds.

While recording, the summary is a checkpoint rewritten every few seconds, so at a kill it is seconds
behind the segments on disk. `callvault finalize` (and `callvault serve` at start-up, which runs the
same recover_folder) must rewrite it from the files: frames, keyframes, duration, every segment with
its size and hash, the first and last timestamps; the counters only the live pipeline knew are kept
and flagged as possibly incomplete. Checked against ffprobe of the recovered file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from media import encode_reference, read_packets, rtp_sender, sdp_for

from recorder.commands.demo import free_port_pair
from recorder.mux.recovery import recover_folder

CALLVAULT = [sys.executable, "-m", "recorder.cli"]
SEGMENT_SECONDS = 2.0


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "0", "-show_entries", "packet=pts_time,flags",
         "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    probe: dict[str, Any] = json.loads(result.stdout)
    return probe


@pytest.mark.slow
def test_finalize_rewrites_the_summary_from_what_was_recovered(tmp_path: Path) -> None:
    ref = encode_reference("vp8", tmp_path, 10.0)
    sent = read_packets(ref).data
    port = free_port_pair()
    sdp = tmp_path / "in.sdp"
    sdp.write_text(sdp_for([("vp8", port, 96)]))
    out = tmp_path / "out"
    folder = out / "r"
    log = (tmp_path / "recorder.log").open("wb")
    rec = subprocess.Popen(
        [*CALLVAULT, "record-rtp", "--sdp", str(sdp), "--out", str(out), "--name", "r",
         "--segment-seconds", str(SEGMENT_SECONDS)],
        stdout=log, stderr=log,
    )  # fmt: skip
    sender = None
    try:
        wait_for((folder / "video-0.json").is_file, 20)
        sender = rtp_sender(ref, port)
        # Kill the recorder 1.5 s into its fourth segment: three closed, one open and cut short.
        wait_for((folder / "video-0.segments" / "000003.webm").is_file, 20)
        time.sleep(1.5)
        os.kill(rec.pid, signal.SIGKILL)
        rec.wait(timeout=10)
    finally:
        for proc in (rec, sender):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
    live = json.loads((folder / "video-0.json").read_text())
    assert live["state"] == "recording"
    assert live["packets_received"] > 0
    crashed = tmp_path / "crashed"  # the same crash, recovered as `callvault serve` does at start-up
    shutil.copytree(out, crashed)

    result = subprocess.run(
        [*CALLVAULT, "finalize", str(out)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((folder / "video-0.json").read_text())
    assert f"recovered video-0: {summary['frames']} frames" in result.stdout

    assert summary["state"] == "recovered" and summary["error"] is None
    assert summary["counters_incomplete"] is True
    # Counters only the live pipeline knew are kept from the last live summary.
    for counter in ("packets_received", "packets_lost", "keyframe_requests", "first_wallclock"):
        assert summary[counter] == live[counter], counter

    # Frames, keyframes, duration: as ffprobe counts them in the recovered file.
    joined = folder / summary["file"]
    probe = ffprobe(joined)
    packets = probe["packets"]
    assert summary["frames"] == len(packets) > 0
    assert summary["keyframes"] == sum("K" in p["flags"] for p in packets)
    assert summary["duration"] == pytest.approx(float(probe["format"]["duration"]), abs=0.0005)
    assert summary["frames"] + summary["frames_unwritten"] >= live["frames"]
    got = read_packets(joined).data
    assert got == sent[: len(got)]

    # First and last timestamps: the first frame's are the live ones; the last frame's span the file.
    span = float(packets[-1]["pts_time"]) - float(packets[0]["pts_time"])
    assert summary["first_rtp_timestamp"] == live["first_rtp_timestamp"]
    rtp_span = (summary["last_rtp_timestamp"] - summary["first_rtp_timestamp"]) / 90000
    assert rtp_span == pytest.approx(span, abs=0.002)
    wall_span = summary["last_wallclock"] - summary["first_wallclock"]
    assert wall_span == pytest.approx(span, abs=0.2)
    assert set(summary["estimated"]) >= {"last_rtp_timestamp", "last_wallclock"}

    # Every segment on disk is listed, with its size and hash, and their frames add up.
    on_disk = sorted((folder / "video-0.segments").iterdir())
    assert [s["path"] for s in summary["segments"]] == [str(p.relative_to(folder)) for p in on_disk]
    assert [s["index"] for s in summary["segments"]] == list(range(len(on_disk)))
    for seg, path in zip(summary["segments"], on_disk, strict=True):
        assert seg["size"] == path.stat().st_size
        assert seg["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert seg["frames"] == len(read_packets(path).data)
    assert sum(s["frames"] for s in summary["segments"]) == summary["frames"]
    stamps = [(s["first_rtp_timestamp"], s["last_rtp_timestamp"]) for s in summary["segments"]]
    assert stamps == sorted(stamps) and all(a <= b for a, b in stamps)
    assert stamps[-1][1] == summary["last_rtp_timestamp"]

    # The start-up path gives the same summary.
    (at_start_up,) = recover_folder(crashed)
    assert at_start_up.model_dump(mode="json") == summary
