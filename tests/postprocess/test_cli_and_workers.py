"""`callvault composite` end to end (outputs checked by ffprobe), its errors, and the worker pool."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from composite_kit import Call

from postprocess.options import CompositeOptions
from postprocess.workers import CompositeTimeout, CompositeWorkers
from recorder.commands.composite import ProgressBar

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def callvault(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recorder.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def probe(path: Path) -> list[str]:
    args = ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True)
    return [s["codec_name"] for s in json.loads(out.stdout)["streams"]]


def test_mp4_default_is_h264_aac_with_fast_start(call: Call, tmp_path: Path) -> None:
    out = tmp_path / "call.mp4"
    r = callvault("composite", str(call.folder), "--profile", "sd", "--layout", "speaker", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "alice, bob" in r.stdout and "real time" in r.stdout
    assert sorted(probe(out)) == ["aac", "h264"]
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # fast start: the index first
    errors = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"], capture_output=True,
                            text=True, timeout=60, check=False)  # fmt: skip
    assert errors.returncode == 0 and errors.stderr == ""


@pytest.mark.parametrize(
    ("args", "name", "codecs"),
    [
        (["--format", "webm", "--layout", "pip"], "c.webm", ["opus", "vp8"]),
        (["--format", "webm", "--webm-codec", "vp9"], "c.webm", ["opus", "vp9"]),
        (["--audio-only"], "c.m4a", ["aac"]),
        (["--audio-only", "--format", "webm"], "c.webm", ["opus"]),
    ],
)
def test_other_outputs(call: Call, tmp_path: Path, args: list[str], name: str, codecs: list[str]) -> None:
    out = tmp_path / name
    r = callvault("composite", str(call.folder), "--profile", "sd", *args, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(probe(out)) == codecs


def test_bad_input_exits_2_with_one_line(tmp_path: Path, call: Call) -> None:
    for args in (
        [str(tmp_path / "missing")],
        [str(tmp_path)],
        [str(call.folder), "--fps", "0"],
    ):
        r = callvault("composite", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("callvault: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert callvault("composite", str(call.folder), "--layout", "mosaic").returncode == 2  # argparse


def test_a_recording_id_is_found_in_the_data_folder(call: Call, tmp_path: Path) -> None:
    call.copy(tmp_path / "data" / "recordings" / "rec-by-id")
    out = tmp_path / "by-id.m4a"
    r = callvault(
        "composite", "rec-by-id", "--data-dir", str(tmp_path / "data"), "--audio-only", "--out", str(out)
    )
    assert r.returncode == 0, r.stderr
    assert probe(out) == ["aac"]
    r = callvault("composite", "rec-nowhere", "--data-dir", str(tmp_path / "data"))
    assert r.returncode == 2 and "nor a recording id under" in r.stderr and "data/recordings" in r.stderr


def test_progress_bar_on_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    bar = ProgressBar(stream, width=10)
    bar(5.0, 10.0)
    bar.close()
    assert "[#####-----]  50%" in stream.getvalue()
    quiet = io.StringIO()
    ProgressBar(quiet)(1.0, 2.0)
    assert quiet.getvalue() == ""


async def test_worker_pool(call: Call, tmp_path: Path) -> None:
    workers = CompositeWorkers(processes=1, queue=1, timeout=60)
    try:
        result = await workers.submit(call.folder, CompositeOptions(profile="sd", out=tmp_path / "w.mp4"))
        assert result.path.exists() and result.duration > 5
        workers.timeout = 0.05  # a job that cannot finish in time is abandoned, the pool replaced
        with pytest.raises(CompositeTimeout):
            await workers.submit(call.folder, CompositeOptions(profile="sd", out=tmp_path / "t.mp4"))
        workers.timeout = 60
        again = await workers.submit(call.folder, CompositeOptions(profile="sd", audio_only=True,
                                                                   out=tmp_path / "a.m4a"))  # fmt: skip
        assert again.path.exists()
    finally:
        workers.shutdown()


def test_a_damaged_track_is_reported_once(call: Call, tmp_path: Path) -> None:
    folder = call.copy(tmp_path / "rec")
    data = bytearray((folder / "alice-audio-1.webm").read_bytes())
    (folder / "alice-audio-1.webm").write_bytes(bytes(data[: len(data) // 2]))  # cut: read from segments
    r = callvault("composite", str(folder), "--audio-only", "--out", str(tmp_path / "a.m4a"))
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "alice-audio-1.webm" in line]
    assert len(lines) == 1 and lines[0].startswith("callvault: warning: track alice-audio-1: "), r.stderr


def test_a_bad_option_is_one_line_naming_the_flag(call: Call) -> None:
    r = callvault("composite", str(call.folder), "--video-bitrate", "-5", "--fps", "0")
    assert r.returncode == 2
    assert r.stderr == (
        "callvault: error: invalid option: --fps: must be at least 1;"
        " --video-bitrate: must be greater than 0\n"
    )


def test_worker_processes_log_like_their_parent(call: Call, tmp_path: Path) -> None:
    script = f"""
import asyncio
from pathlib import Path
from recorder import logs
from postprocess.options import CompositeOptions
from postprocess.workers import CompositeWorkers

logs.configure("debug", "json")

async def main():
    workers = CompositeWorkers(processes=1, queue=0, timeout=60)
    try:
        await workers.submit(Path({str(call.folder)!r}),
                             CompositeOptions(audio_only=True, out=Path({str(tmp_path / "w.m4a")!r})))
    finally:
        workers.shutdown()

asyncio.run(main())
"""
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    built = [e for e in records if e["logger"] == "postprocess.workers" and "building" in e["message"]]
    assert built and built[0]["level"] == "debug", r.stderr  # logged in the worker, as JSON at debug
