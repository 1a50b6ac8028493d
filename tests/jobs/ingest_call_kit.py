"""A real call recorded by a `callvault serve` node through its ingest API (tests/jobs): each participant's
VP8 + Opus reference, encoded by Debian's ffmpeg, streamed unchanged as RTP by ffmpeg to the ports the
node answered, then the room closed (the recording finishes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from composite_kit import Publisher, encode_publisher

VP8_PT, OPUS_PT = 101, 100


def _vp8(ssrc: int) -> dict[str, Any]:
    return {
        "codecs": [{"mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000, "parameters": {}}],
        "encodings": [{"ssrc": ssrc}],
    }


def _opus(ssrc: int) -> dict[str, Any]:
    return {
        "codecs": [
            {
                "mimeType": "audio/opus",
                "payloadType": OPUS_PT,
                "clockRate": 48000,
                "channels": 2,
                "parameters": {},
            }
        ],
        "encodings": [{"ssrc": ssrc}],
    }


def references(folder: Path, publishers: list[Publisher]) -> list[tuple[Publisher, Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    return [(pub, encode_publisher(folder, pub)) for pub in publishers]


async def record_call(base: str, key: str, room: str, refs: list[tuple[Publisher, Path]]) -> None:
    """Register every publisher's two streams, stream them in real time, close the room."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def register(pid: str, kind: str, mid: str, params: dict[str, Any]) -> int:
            url = f"{base}/v1/ingest/rooms/{room}/participants/{pid}/streams"
            body = {"kind": kind, "mid": mid, "rtp_parameters": params, "display_name": pid.title()}
            async with http.post(url, json=body) as response:
                answer = await response.json()
                assert response.status == 201, answer
                return int(answer["port"])

        senders = []
        for n, (pub, ref) in enumerate(refs):
            vssrc, assrc = 1000 + 2 * n, 1001 + 2 * n
            vport = await register(pub.id, "video", "0", _vp8(vssrc))
            aport = await register(pub.id, "audio", "1", _opus(assrc))
            args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(ref),
                    "-map", "0:v", "-c", "copy", "-payload_type", str(VP8_PT), "-ssrc", str(vssrc),
                    "-f", "rtp", f"rtp://127.0.0.1:{vport}?pkt_size=1200",
                    "-map", "0:a", "-c", "copy", "-payload_type", str(OPUS_PT), "-ssrc", str(assrc),
                    "-f", "rtp", f"rtp://127.0.0.1:{aport}?pkt_size=1200"]  # fmt: skip
            senders.append(
                await asyncio.create_subprocess_exec(
                    *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                )
            )
        try:
            for proc in senders:
                _, err = await asyncio.wait_for(proc.communicate(), 120)
                assert proc.returncode == 0, err
        finally:
            for proc in senders:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        async with http.delete(f"{base}/v1/ingest/rooms/{room}") as response:
            assert response.status in (200, 204), await response.text()
