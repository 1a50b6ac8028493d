"""integrations/mediasoup/examples/server.mjs as a user runs it (the package and mediasoup resolved from
node_modules), recording a room into a real `callvault serve`: the example is kept working."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mediasoup_kit import API_KEY, PACKAGE, CallVault, encode, frames, runs_in, send, until

pytestmark = pytest.mark.slow


@pytest.fixture
def callvault(tmp_path: Path, mediasoup_worker: Path) -> Iterator[CallVault]:
    service = CallVault(tmp_path / "callvault")
    service.start()
    yield service
    service.stop()


def example_app(folder: Path) -> Path:
    """The example in a folder of its own, its dependencies installed as npm would (links here)."""
    app = folder / "app"
    (app / "node_modules" / "@callvault").mkdir(parents=True)
    (app / "server.mjs").write_text((PACKAGE / "examples" / "server.mjs").read_text())
    (app / "package.json").write_text((PACKAGE / "examples" / "package.json").read_text())
    (app / "node_modules" / "@callvault" / "mediasoup").symlink_to(PACKAGE)
    (app / "node_modules" / "mediasoup").symlink_to(PACKAGE / "node_modules" / "mediasoup")
    return app


def test_example_server_records_its_room(
    callvault: CallVault, mediasoup_worker: Path, tmp_path: Path
) -> None:
    app = example_app(tmp_path)
    reference = encode("vp8", tmp_path, 4.0)
    env = {**os.environ, "CALLVAULT_URL": callvault.url, "CALLVAULT_API_KEY": API_KEY, "PORT": "0"}
    env["MEDIASOUP_WORKER_BIN"] = str(mediasoup_worker)
    proc = subprocess.Popen(["node", "server.mjs"], cwd=app, env=env, stdout=subprocess.PIPE, text=True)
    sender = None
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)$", line.strip()).group(1))  # type: ignore[union-attr]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/rooms/demo/participants/alice/produce", data=b'{"kind":"video"}'
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            produced = json.loads(response.read())
        sender = send(
            reference, produced["port"], produced["rtcpPort"], produced["payloadType"], produced["ssrc"]
        )
        assert "recording alice-video-0 of room demo" in proc.stdout.readline()
        until(lambda: sender.poll() is not None, 30)  # the whole reference sent
        delete = urllib.request.Request(f"http://127.0.0.1:{port}/rooms/demo", method="DELETE")
        urllib.request.urlopen(delete, timeout=10).close()
        rid = callvault.finished("demo")
    finally:
        if sender is not None:
            sender.kill()
        proc.terminate()
        proc.wait(timeout=10)
    (summary,) = callvault.summaries(rid).values()
    got = frames(callvault.data / "recordings" / rid / summary["file"], "vp8")
    ((_start, length),) = runs_in(frames(reference, "vp8"), got)
    assert length >= 75 and summary["state"] == "complete"
    detail = callvault.get(f"/v1/recordings/{rid}")
    assert detail["metadata"]["app"] == "example"
