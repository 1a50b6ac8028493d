"""Real calls for composite tests: publishers encoded by Debian's ffmpeg that flash white and beep at the
same instants, recorded over RTP through a real RecordingSession, and analysis of a composite's pictures
and sound to find every flash and every beep."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from recorder.commands.demo import free_port_pair
from recorder.config import RecorderSettings
from recorder.models import Codec, StreamSpec, TrackSummary
from recorder.mux.workers import MuxWorkers
from recorder.session import RecordingSession

PERIOD = 1.0  # a flash and a beep every second
PULSE = 0.1  # each lasts 100 ms


@dataclass
class Publisher:
    id: str
    tone: int  # Hz of its beep
    seconds: float
    start_delay: float = 0.0  # seconds after the call starts that it starts sending
    video_delay: float = 0.0  # its video starts this much after its audio (different file starts)
    size: str = "320x240"
    audio: bool = True
    video: bool = True


def encode_publisher(folder: Path, pub: Publisher) -> Path:
    """VP8 + Opus in WebM: black video with a white flash and a tone burst at the same instants (every
    PERIOD seconds of the publisher's own time, PULSE long). With `video_delay`, the video stream starts
    later in the file, still flashing on the same instants as the beeps."""
    out = folder / f"pub-{pub.id}.webm"
    flash = f"lt(mod(t\\,{PERIOD})\\,{PULSE})"
    vflash = f"lt(mod(t+{pub.video_delay}\\,{PERIOD})\\,{PULSE})"
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    maps: list[str] = []
    if pub.video:
        vsrc = f"color=c=black:s={pub.size}:r=30,drawbox=c=white:t=fill:enable='{vflash}'"
        args += ["-itsoffset", str(pub.video_delay), "-f", "lavfi", "-i", vsrc]
        maps += ["-map", f"{len(maps) // 2}:v"]
    if pub.audio:
        asrc = f"aevalsrc=exprs='if({flash}\\,0.5*sin(2*PI*{pub.tone}*t)\\,0)':s=48000:c=stereo"
        args += ["-f", "lavfi", "-i", asrc]
        maps += ["-map", f"{len(maps) // 2}:a"]
    args += [*maps, "-t", str(pub.seconds)]
    if pub.video:
        args += ["-c:v", "libvpx", "-b:v", "400k", "-g", "30", "-deadline", "realtime", "-cpu-used", "8"]
    if pub.audio:
        args += ["-c:a", "libopus", "-b:a", "64k"]
    subprocess.run([*args, str(out)], check=True, timeout=120)
    return out


def sender(ref: Path, video_port: int | None, audio_port: int | None) -> subprocess.Popen[bytes]:
    """One ffmpeg process streams the publisher's audio and video (`-c copy`, real time) as RTP."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(ref)]
    if video_port is not None:
        args += ["-map", "0:v", "-c", "copy", "-payload_type", "96", "-f", "rtp",
                 f"rtp://127.0.0.1:{video_port}?rtcpport={video_port + 1}&pkt_size=1200"]  # fmt: skip
    if audio_port is not None:
        args += ["-map", "0:a", "-c", "copy", "-payload_type", "111", "-f", "rtp",
                 f"rtp://127.0.0.1:{audio_port}?rtcpport={audio_port + 1}&pkt_size=1200"]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def record_call(folder: Path, refs: list[tuple[Publisher, Path]]) -> list[TrackSummary]:
    """Record the publishers through a real RecordingSession; each starts `start_delay` after the first.
    Track names are `<participant>-<kind>-<mid>`, as the service names them."""
    workers = MuxWorkers(2)
    session = RecordingSession(folder, RecorderSettings(segment_seconds=2.0), workers)
    ports: dict[str, tuple[int | None, int | None]] = {}
    for pub, _ in refs:
        vport = free_port_pair() if pub.video else None
        aport = free_port_pair() if pub.audio else None
        if vport is not None:
            await session.add_track(StreamSpec(name=f"{pub.id}-video-0", codec=Codec.VP8, payload_type=96,
                                               clock_rate=90000, port=vport, rtcp_port=vport + 1))  # fmt: skip
        if aport is not None:
            await session.add_track(StreamSpec(name=f"{pub.id}-audio-1", codec=Codec.OPUS, payload_type=111,
                                               clock_rate=48000, channels=2, port=aport, rtcp_port=aport + 1))  # fmt: skip
        ports[pub.id] = (vport, aport)

    async def run(pub: Publisher, ref: Path) -> None:
        await asyncio.sleep(pub.start_delay)
        proc = sender(ref, *ports[pub.id])
        try:
            await asyncio.to_thread(proc.wait, 60)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""

    try:
        await asyncio.gather(*(run(pub, ref) for pub, ref in refs))
        await asyncio.sleep(0.3)
    finally:
        summaries = await session.stop()
        workers.shutdown()
    return summaries


# -- analysis of a composite ---------------------------------------------------------------------------


def video_luma(path: Path, regions: dict[str, tuple[int, int, int, int]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(frame times, mean luma of each region (x, y, w, h) per frame) of a composite's video."""
    times: list[float] = []
    lumas: dict[str, list[float]] = {k: [] for k in regions}
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            y = frame.to_ndarray(format="gray")
            times.append(float(frame.time))
            for k, (x0, y0, w, h) in regions.items():
                lumas[k].append(float(y[y0 : y0 + h, x0 : x0 + w].mean()))
    return np.array(times), {k: np.array(v) for k, v in lumas.items()}


def flash_onsets(times: np.ndarray, luma: np.ndarray, after: float = 0.0, threshold: float = 128.0) -> list[float]:
    """Times of the frames where the region turns bright."""
    bright = luma > threshold
    return [float(times[i]) for i in range(1, len(times)) if bright[i] and not bright[i - 1] and times[i] >= after]


def audio_mono(path: Path) -> tuple[np.ndarray, int]:
    """The composite's audio as mono float32 with its sample rate; the first sample is at time 0."""
    chunks, rate, start = [], 48000, None
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=48000)
        for frame in c.decode(stream):
            if start is None:
                start = float(frame.time or 0.0)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    lead = round((start or 0.0) * rate)
    if lead > 0:
        samples = np.concatenate([np.zeros(lead, np.float32), samples])
    return samples, rate


def tone_onsets(samples: np.ndarray, rate: int, hz: float, window: float = 0.005) -> list[float]:
    """Times where a tone of `hz` starts: its envelope (quadrature demodulation, `window` smoothing)
    rises through half its maximum."""
    t = np.arange(len(samples)) / rate
    i = samples * np.cos(2 * np.pi * hz * t)
    q = samples * np.sin(2 * np.pi * hz * t)
    n = max(1, round(window * rate))
    kernel = np.ones(n) / n
    env = 2 * np.hypot(np.convolve(i, kernel, "same"), np.convolve(q, kernel, "same"))
    if env.max(initial=0.0) < 0.05:
        return []
    on = env > env.max() / 2
    edges = np.flatnonzero(on[1:] & ~on[:-1]) + 1
    onsets: list[float] = []
    for e in edges:
        if not onsets or e / rate - onsets[-1] > PULSE * 2:
            onsets.append(float(e / rate))
    return onsets


def pair_offsets(flashes: list[float], beeps: list[float]) -> list[float]:
    """For every flash, flash time minus the nearest beep's."""
    return [f - min(beeps, key=lambda b: abs(b - f)) for f in flashes] if beeps else []
