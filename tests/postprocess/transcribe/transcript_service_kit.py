"""The recording service as `callvault serve` runs it (in this process, Janus off, the archive on with a
local store and a webhook receiver), fed through the ingest API's door: each publisher's espeak-ng speech
sent as real RTP by ffmpeg to the ports the API answers."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from archive_kit import Receiver
from janus_fixture import free_port
from service_kit import free_port_base, free_tcp_port, wait_ready

from recorder.commands.serve import serve
from recorder.service.settings import ServiceSettings
from recorder.webhooks import generate_secret

ADMIN_KEY = "transcript-admin-key-for-tests-0123456789abcdef"
ROOM = "support-1"


def opus_parameters(ssrc: int) -> dict[str, Any]:
    return {
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": ssrc}],
    }


def settings_for(
    work: Path,
    receiver: Receiver,
    encryption: dict[str, Any] | None = None,
    composite: dict[str, Any] | None = None,
    **transcripts: Any,
) -> ServiceSettings:
    port_base = free_port_base()
    return ServiceSettings.model_validate(
        {
            "data_dir": work / "data",
            "http_host": "127.0.0.1",
            "http_port": free_tcp_port(),
            "rtp_bind": "127.0.0.1",
            "rtp_port_min": port_base,
            "rtp_port_max": port_base + 39,
            "janus": {"enabled": False},
            "recorder": {"segment_seconds": 1.0, "mux_threads": 1},
            "api": {"admin_key": ADMIN_KEY},
            "ingest": {"lease_seconds": 30, "empty_room_grace": 0.2},
            "composite": composite or {"enabled": False},
            "archive": {
                "storage": {"backend": "local", "local": {"root": str(work / "store")}},
                "signing": {
                    "key_file": str(work / "signing-key.pem"),
                    "key_env": "CALLVAULT_TEST_NO_SUCH_VAR",
                },
                "spool": {"poll_interval": 0.1, "retry_initial": 0.1},
                "webhooks": {
                    "endpoints": [{"id": "crm", "url": receiver.url, "secret": receiver.secret}],
                    "poll_interval": 0.1,
                },
                "completion_poll": 0.1,
                **({"encryption": encryption} if encryption else {}),
            },
            "transcripts": {"threads": 2, **transcripts},
        }
    )


@dataclass
class Service:
    base: str
    http: aiohttp.ClientSession
    settings: ServiceSettings

    async def call(self, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        async with self.http.request(method, self.base + path, headers=headers, json=json) as r:
            if r.content_type in ("application/json", "application/problem+json"):
                return r.status, await r.json(content_type=None)
            return r.status, await r.text()

    async def speak_into(self, refs: list[tuple[str, Path]]) -> str:
        """Register each participant's audio, send its speech as RTP (one after the other's start, in
        real time), then end the streams; returns the recording id."""
        ports: dict[str, int] = {}
        rid = ""
        for i, (participant, _) in enumerate(refs):
            body = {"kind": "audio", "mid": "1", "rtp_parameters": opus_parameters(1000 + i)}
            status, out = await self.call(
                "POST", f"/v1/ingest/rooms/{ROOM}/participants/{participant}/streams", body
            )
            assert status == 201, out
            ports[participant], rid = out["port"], out["recording_id"]
        senders = [send(ref, ports[p], 1000 + i) for i, (p, ref) in enumerate(refs)]
        try:
            for proc in senders:
                await asyncio.to_thread(proc.wait, 120)
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            for proc in senders:
                if proc.returncode is None:
                    proc.kill()
        for participant, _ in refs:
            status, out = await self.call(
                "DELETE", f"/v1/ingest/rooms/{ROOM}/participants/{participant}/streams/1"
            )
            assert status == 200, out
        return rid


def send(ref: Path, port: int, ssrc: int) -> subprocess.Popen[bytes]:
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(ref), "-map", "0:a",
            "-c", "copy", "-payload_type", "111", "-ssrc", str(ssrc), "-f", "rtp",
            f"rtp://127.0.0.1:{port}?rtcpport={port + 1}&pkt_size=1200"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@contextlib.asynccontextmanager
async def running(settings: ServiceSettings) -> AsyncIterator[Service]:
    """`serve(settings)` until the block ends (then stopped as SIGTERM would)."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop, signals=False))
    base = f"http://127.0.0.1:{settings.http_port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_ready(http, base, 30)
            yield Service(base, http, settings)
    finally:
        stop.set()
        async with asyncio.timeout(60):
            await task


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    r = Receiver(free_port(), generate_secret())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
