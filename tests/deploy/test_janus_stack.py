"""The compose stack's Janus configuration (deploy/janus/*.jcfg) run by a real Janus 1.1.2, with
`callvault serve` configured by the compose file's environment: CallVault connects, turns ready, receives
Janus's events through the sampleevh backend and token, and the VideoRoom demands the admin key the
compose file gives CallVault (lock_rtp_forward) and accepts its room secret.

Only what ties the stack to the host changes: the config folder, the WebSocket address and port, the
event backend's host and port (127.0.0.1 and free ports instead of the compose network), and
ice_enforce_list (no eth0 here). Everything else is the files as they ship."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from deploy_kit import DEPLOY

from janus_bridge.client import JanusClient
from janus_bridge.errors import JanusError
from janus_bridge.videoroom import ForwardStream

pytestmark = pytest.mark.timeout(90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _callvault_bin() -> str:
    return str(Path(sys.executable).with_name("callvault"))


def _compose_env() -> dict[str, str]:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    env = compose["services"]["callvault"]["environment"]
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def _janus_config(target: Path, ws_port: int, callvault_port: int) -> None:
    target.mkdir(parents=True)
    for source in (DEPLOY / "janus").glob("*.jcfg"):
        text = source.read_text()
        if source.name == "janus.jcfg":
            text = text.replace('configs_folder = "/etc/janus"', f'configs_folder = "{target}"')
            text = re.sub(r'^\s*ice_enforce_list = "eth0"\n', "", text, flags=re.MULTILINE)
        if source.name == "janus.transport.websockets.jcfg":
            text = text.replace('ws_ip = "0.0.0.0"', 'ws_ip = "127.0.0.1"').replace(
                "ws_port = 8188", f"ws_port = {ws_port}"
            )
        if source.name == "janus.eventhandler.sampleevh.jcfg":
            text = text.replace("http://callvault:8080/", f"http://127.0.0.1:{callvault_port}/")
        (target / source.name).write_text(text)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    if shutil.which("janus") is None:
        pytest.skip("janus is not installed: apt-get install -y janus")
    ws_port, http_port = _free_port(), _free_port()
    _janus_config(tmp_path / "etc", ws_port, http_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    env.update(_compose_env())
    env.update(
        CALLVAULT_HTTP_HOST="127.0.0.1",
        CALLVAULT_HTTP_PORT=str(http_port),
        CALLVAULT_DATA_DIR=str(tmp_path / "data"),
        CALLVAULT_JANUS__WS_URL=f"ws://127.0.0.1:{ws_port}",
        CALLVAULT_JANUS__FORWARD_HOST="127.0.0.1",
    )
    log = (tmp_path / "callvault.log").open("wb")
    callvault = subprocess.Popen([_callvault_bin(), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    janus_log = (tmp_path / "janus.log").open("wb")
    command = [
        "janus",
        "-F",
        str(tmp_path / "etc"),
        "-C",
        str(tmp_path / "etc" / "janus.jcfg"),
        "--nat-1-1=127.0.0.1",
    ]
    janus = subprocess.Popen(command, stdout=janus_log, stderr=subprocess.STDOUT)
    try:
        yield {"http": f"http://127.0.0.1:{http_port}", "ws": f"ws://127.0.0.1:{ws_port}", "env": env,
               "callvault": callvault, "logs": tmp_path}  # fmt: skip
    finally:
        for proc in (callvault, janus):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log.close()
        janus_log.close()


async def _status(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    try:
        async with http.get(url) as response:
            return response.status, await response.json()
    except aiohttp.ClientError:
        return 0, None


async def test_compose_janus_config_with_callvault(stack: dict[str, Any]) -> None:
    env = stack["env"]
    logs = stack["logs"]
    headers = {"Authorization": f"Bearer {env['CALLVAULT_API__ADMIN_KEY']}"}  # /v1/status needs a key
    async with aiohttp.ClientSession(headers=headers) as http:
        for _ in range(200):
            code, _ = await _status(http, f"{stack['http']}/readyz")
            if code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("CallVault did not get ready with the compose Janus:\n" + _tails(logs))
        # Janus's core "started" event went through sampleevh, with the token.
        for _ in range(100):
            _, status = await _status(http, f"{stack['http']}/v1/status")
            if status and status["janus_events"]["received"] > 0:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"no Janus event reached CallVault: {status}\n" + _tails(logs))
        assert status["janus_events"]["unauthorized"] == 0

    async with JanusClient(stack["ws"]) as client:
        room = await client.videoroom()
        secret = env["CALLVAULT_JANUS__ROOM_SECRET"]
        assert await room.list_forwarders(1234, secret) == []
        stream = [ForwardStream(mid="0", port=40000)]
        # lock_rtp_forward: without the right admin key, Janus refuses (433 unauthorized) ...
        with pytest.raises(JanusError) as refused:
            await room.rtp_forward(1234, 4242, "127.0.0.1", stream, secret=secret, admin_key="wrong")
        assert refused.value.code == 433
        assert "admin_key" in str(refused.value)
        # ... with the compose file's key it gets as far as the (absent) publisher: 428 no such feed.
        with pytest.raises(JanusError) as absent:
            await room.rtp_forward(
                1234, 4242, "127.0.0.1", stream, secret=secret, admin_key=env["CALLVAULT_JANUS__ADMIN_KEY"]
            )
        assert absent.value.code == 428

    callvault = stack["callvault"]
    callvault.send_signal(signal.SIGTERM)
    assert callvault.wait(timeout=30) == 0


def _tails(folder: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.glob("*.log"))
    )
