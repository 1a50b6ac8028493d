"""`callvault demo` (what `make demo` runs), end to end as a user runs it: Janus in a network namespace,
two aiortc publishers, `callvault serve` with the local store, signed manifests, a composite and a
webhook receiver. The printed summary names both participants, their four complete tracks with frames,
the composite, three webhooks with verified signatures and `callvault verify` OK; the files are where it
says; while it keeps serving, its API answers on the host's 127.0.0.1 with the key it printed; it exits 0
after --seconds (within 90 s in all) and leaves no namespace behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import IO

import pytest
from media import ffprobe_errors

from recorder.demo import lab

pytestmark = pytest.mark.slow
CLI = Path(sys.executable).with_name("callvault")
"""The console script, as `make demo` runs it."""
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}


def stderr_of(file: IO[str]) -> str:
    file.seek(0)
    return file.read()[-4000:]


def test_demo_records_a_janus_call_and_keeps_serving(tmp_path: Path) -> None:
    reason = lab.missing()
    if reason is not None:
        pytest.skip(reason)
    pytest.importorskip("aiortc")
    out = tmp_path / "demo-out"
    args = ["demo", "--out", str(out), "--call-seconds", "3", "--seconds", "8", "--api-port", "0"]
    with (tmp_path / "stderr.txt").open("w+") as stderr:
        proc = subprocess.Popen(
            [str(CLI), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=ENV,  # as a user runs it: not tests/conftest.py's CALLVAULT_COMPOSITE__ENABLED=false
        )
        lines: list[str] = []
        serving = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("stopping in "):
                    serving.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            assert serving.wait(70), "".join(lines) + f"\nrc={proc.poll()}\n" + stderr_of(stderr)
            text = "".join(lines)
            port = re.search(r"forwarded to http://127\.0\.0\.1:(\d+) on this host", text)
            key = re.search(r"Bearer (demo-[\w-]+)'", text)
            assert port and key, text
            request = urllib.request.Request(
                f"http://127.0.0.1:{port[1]}/v1/recordings", headers={"Authorization": f"Bearer {key[1]}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:  # the host side of the relay
                assert response.status == 200
                assert b'"status":"finished"' in response.read().replace(b" ", b"")
            proc.wait(timeout=40)
            reader.join(10)
        finally:
            if proc.poll() is None:  # SIGTERM: the demo stops Janus and removes its namespace
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        text = "".join(lines)
        assert proc.returncode == 0, text + stderr_of(stderr)

    (participants,) = re.findall(r"participants:\n((?:  .*\n)+)", text)
    assert re.search(r"\d+  Alice  \(sent \d+ video frames\)", participants), text
    assert re.search(r"\d+  Bob  \(sent \d+ video frames\)", participants), text
    tracks = re.findall(r"  (\S+\.webm)  (Alice|Bob): (VP8|OPUS).*, (\d+) frames .*, (\w+)\n", text)
    assert sorted((who, codec) for _, who, codec, _, _ in tracks) == [
        ("Alice", "OPUS"), ("Alice", "VP8"), ("Bob", "OPUS"), ("Bob", "VP8"),
    ], text  # fmt: skip
    assert all(int(frames) > 0 and state == "complete" for _, _, _, frames, state in tracks), tracks
    hooks = re.findall(r"  ([a-z.]+) +msg_\S+  signature verified\n", text)
    assert hooks == ["recording.started", "recording.finished", "composite.finished"], text
    assert "\ncallvault verify: OK\n" in text
    assert re.search(r": \d+ objects, chains and signature verified", text), text

    (composite,) = re.findall(r"  (\S+/composite-sd\.mp4)  \(\d+ bytes\): h264 640x360, aac", text)
    folder = Path(composite).parent
    assert folder.is_relative_to(out / "store")
    assert ffprobe_errors(Path(composite)) == ""
    for file, *_ in tracks:
        assert (folder / file).is_file() and ffprobe_errors(folder / file) == "", file
    for name in ("manifest.json", "manifest.json.sig"):
        assert (folder / name).is_file()
    assert (out / "callvault.toml").is_file() and (out / "signing-key.pem").is_file()
    assert (out / "signing-key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert not [n for n in lab.NETNS_DIR.glob(f"{lab.PREFIX}{proc.pid}x*")], "namespace left behind"
