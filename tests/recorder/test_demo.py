"""`callvault demo --rtp` (the older demo): a live call from ffmpeg recorded by record-rtp, then its
composite built; every file it lists decodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from media import ffprobe_errors


def test_demo_records_a_call_and_builds_its_composite(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    result = subprocess.run(
        [sys.executable, "-m", "recorder.cli", "demo", "--rtp", "--out", str(out), "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    media = sorted(p.name for p in folder.glob("*.*") if p.suffix in {".webm", ".mp4"})
    assert media == ["audio-1.webm", "composite.mp4", "video-0.webm"], media
    for name in media:
        assert ffprobe_errors(folder / name) == "", name
        assert f"ffprobe {name}:" in result.stdout
