"""Real media for tests: reference files encoded by Debian's ffmpeg, streamed as RTP with `-c copy` so
the frames on the wire are known exactly, and read back with PyAV."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import av

if TYPE_CHECKING:
    from recorder.session import RecordingSession

# codec -> (ffmpeg input args, encoder args, reference container extension, RTP encoding name/clock)
VIDEO_SRC = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"]
AUDIO_SRC = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
ENCODINGS = {
    "vp8": (VIDEO_SRC, ["-c:v", "libvpx", "-b:v", "600k", "-g", "30", "-deadline", "realtime"],
            "webm", "VP8/90000"),
    "vp9": (VIDEO_SRC, ["-c:v", "libvpx-vp9", "-b:v", "600k", "-g", "30", "-deadline", "realtime",
                        "-cpu-used", "8"], "webm", "VP9/90000"),
    "h264": (VIDEO_SRC, ["-c:v", "libx264", "-bf", "0", "-g", "30", "-preset", "veryfast",
                         "-profile:v", "baseline", "-bsf:v", "h264_mp4toannexb"], "h264", "H264/90000"),
    "opus": (AUDIO_SRC, ["-c:a", "libopus", "-b:a", "48k"], "webm", "opus/48000/2"),
}  # fmt: skip


def encode_reference(codec: str, folder: Path, seconds: float = 3.0) -> Path:
    """Encode `seconds` of a test source with Debian's ffmpeg into a reference file."""
    src, enc, ext, _ = ENCODINGS[codec]
    out = folder / f"ref-{codec}.{ext}"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *src, "-t", str(seconds), *enc, str(out)],
        check=True,
        timeout=120,
    )
    return out


def rtp_sender(
    reference: Path, port: int, payload_type: int = 96, realtime: bool = True
) -> subprocess.Popen[bytes]:
    """Stream a reference file's frames unchanged (`-c copy`) as RTP to 127.0.0.1:port (RTCP port+1)."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error"]
    if realtime:
        args.append("-re")
    if reference.suffix == ".h264":
        args += ["-framerate", "30"]  # raw H.264 has no timestamps
    args += ["-i", str(reference), "-map", "0", "-c", "copy", "-strict", "experimental",
             "-payload_type", str(payload_type),
             "-f", "rtp", f"rtp://127.0.0.1:{port}?rtcpport={port + 1}&pkt_size=1200"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sdp_for(streams: list[tuple[str, int, int]]) -> str:
    """SDP for (codec, port, payload type) streams sent to 127.0.0.1."""
    lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=test", "c=IN IP4 127.0.0.1", "t=0 0"]
    for codec, port, pt in streams:
        kind = "audio" if codec == "opus" else "video"
        lines += [f"m={kind} {port} RTP/AVP {pt}", f"a=rtpmap:{pt} {ENCODINGS[codec][3]}"]
        if codec == "h264":
            lines.append(f"a=fmtp:{pt} packetization-mode=1")
    return "\n".join(lines) + "\n"


@dataclass
class Packets:
    data: list[bytes]
    keyframes: list[bool]
    pts_seconds: list[float]
    duration: float


def read_packets(path: Path) -> Packets:
    """Every non-empty packet of the first stream, with its keyframe flag and time."""
    data, keys, times = [], [], []
    with av.open(str(path)) as c:
        stream = c.streams[0]
        for p in c.demux(stream):
            if p.size == 0:
                continue
            data.append(bytes(p))
            keys.append(bool(p.is_keyframe))
            times.append(float(p.pts * p.time_base) if p.pts is not None else float("nan"))
    duration = (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Packets(data, keys, times, duration)


def nal_units(access_unit: bytes) -> list[bytes]:
    """NAL units of an H.264 access unit in Annex B or 4-byte length-prefixed (AVCC) form."""
    if access_unit[:4] == b"\x00\x00\x00\x01" or access_unit[:3] == b"\x00\x00\x01":
        parts = access_unit.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
        return [p for p in parts if p]
    nals, i = [], 0
    while i + 4 <= len(access_unit):
        size = int.from_bytes(access_unit[i : i + 4], "big")
        nals.append(access_unit[i + 4 : i + 4 + size])
        i += 4 + size
    return nals


def slice_nals(access_unit: bytes) -> list[bytes]:
    """The coded-slice NAL units (types 1-5) of an access unit: what must match bit for bit."""
    return [n for n in nal_units(access_unit) if 1 <= (n[0] & 0x1F) <= 5]


def ffprobe_errors(path: Path) -> str:
    """What ffmpeg's decoder says about a file: empty when it decodes cleanly."""
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return (result.stderr + ("" if result.returncode == 0 else f"exit {result.returncode}")).strip()


SECRET_NORMAL, SECRET_SECONDS = 2.0, 2.0
"""A "card number" call: this long of test pattern, then this long of solid red, then pattern again."""


def encode_with_secret(folder: Path) -> Path:
    """A VP8 call that shows solid red (the secret) only in its middle `SECRET_SECONDS`."""
    graph = (
        f"testsrc2=s=320x240:r=30:d={SECRET_NORMAL}[a];color=c=red:s=320x240:r=30:d={SECRET_SECONDS}[b];"
        f"testsrc2=s=320x240:r=30:d={SECRET_NORMAL}[c];[a][b][c]concat=n=3"
    )
    out = folder / "call.webm"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", graph,
         "-c:v", "libvpx", "-b:v", "600k", "-g", "15", "-deadline", "realtime", str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    return out


async def first_packet(session: RecordingSession, within: float = 30.0) -> float:
    """Until a packet reached one of `session`'s tracks: the event loop's time then. A sender's `-re` clock
    starts about there, not when its ffmpeg was spawned (its start-up is longer on a loaded machine): a
    pause meant for a stretch of the media is timed from here."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(within):
        while not any(t.pipeline.reorder.stats.received for t in session.tracks.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.002)
    return loop.time()


def red_frames(path: Path) -> int:
    """Decoded frames of `path` that are mostly solid red (the secret)."""
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            r, g, b = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
            count += bool(r > 150 and g < 80 and b < 80)
    return count
