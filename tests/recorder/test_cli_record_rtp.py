"""`callvault record-rtp` as a user runs it: clear errors, clean stops, and the crash bound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import encode_reference, read_packets, rtp_sender, sdp_for

from recorder.commands.demo import free_port_pair

CALLVAULT = [sys.executable, "-m", "recorder.cli"]


def callvault(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CALLVAULT, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize(
    ("sdp", "message"),
    [
        ("this is not an SDP file\n", "SDP line 1: expected"),
        (
            "v=0\nm=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMU/8000\n",
            "unsupported codec for audio stream: PCMU/8000",
        ),
        ("v=0\nm=video 5000 RTP/AVP 96\na=rtpmap:96 AV1/90000\n", "AV1/90000"),
    ],
)
def test_bad_sdp_is_a_one_line_error_with_status_2(tmp_path: Path, sdp: str, message: str) -> None:
    path = tmp_path / "in.sdp"
    path.write_text(sdp)
    result = callvault("record-rtp", "--sdp", str(path), "--out", str(tmp_path / "out"), "--duration", "1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("callvault: error:")


def test_missing_sdp_file_is_a_clear_error(tmp_path: Path) -> None:
    result = callvault("record-rtp", "--sdp", str(tmp_path / "nope.sdp"), "--out", str(tmp_path))
    assert result.returncode == 2 and "cannot read SDP file" in result.stderr


def wait_for(predicate: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")


def start_recorder(tmp_path: Path, codec: str, port: int, *extra: str) -> subprocess.Popen[str]:
    sdp = tmp_path / "in.sdp"
    sdp.write_text(sdp_for([(codec, port, 96)]))
    proc = subprocess.Popen(
        [*CALLVAULT, "record-rtp", "--sdp", str(sdp), "--out", str(tmp_path / "out"), "--name", "r", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (tmp_path / "out" / "r").is_dir() and any((tmp_path / "out" / "r").glob("*.json")), 20)
    return proc


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_reports_the_files(tmp_path: Path) -> None:
    ref = encode_reference("vp8", tmp_path, 2.0)
    port = free_port_pair()
    rec = start_recorder(tmp_path, "vp8", port)
    sender = rtp_sender(ref, port)
    sender.wait(timeout=30)
    time.sleep(0.3)
    rec.send_signal(signal.SIGTERM)
    out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    assert "recording:" in out and ".webm" in out
    assert len(read_packets(tmp_path / "out" / "r" / "video-0.webm").data) == len(read_packets(ref).data)


@pytest.mark.slow
def test_sigkill_loses_at_most_the_open_segment(tmp_path: Path) -> None:
    """Kill -9 mid-call: after finalizing, the recording holds every frame sent up to one segment (plus
    one Matroska cluster of slack) before the kill, bit for bit."""
    segment = 1.0
    ref = encode_reference("vp8", tmp_path, 8.0)
    sent_frames = read_packets(ref).data
    port = free_port_pair()
    rec = start_recorder(tmp_path, "vp8", port, "--segment-seconds", str(segment))
    sender = rtp_sender(ref, port)
    started = time.monotonic()
    time.sleep(4.0)
    os.kill(rec.pid, signal.SIGKILL)
    killed_after = time.monotonic() - started
    rec.wait(timeout=10)
    sender.wait(timeout=30)

    folder = tmp_path / "out" / "r"
    assert json.loads((folder / "video-0.json").read_text())["state"] == "recording"
    result = callvault("finalize", str(tmp_path / "out"))
    assert result.returncode == 0 and "recovered video-0" in result.stdout
    summary = json.loads((folder / "video-0.json").read_text())
    assert summary["state"] == "recovered"
    got = read_packets(folder / summary["file"]).data
    assert got == sent_frames[: len(got)]  # a bit-exact prefix of what was sent
    sent_before_kill = int(killed_after * 30)
    assert len(got) >= sent_before_kill - int((segment + 1.0 + 0.3) * 30), (len(got), sent_before_kill)
