"""Real calls for composite tests: publishers encoded by Debian's ffmpeg that flash white and beep at the
same instants, recorded over RTP through a real RecordingSession, and analysis of a composite's pictures
and sound to find every flash and every beep."""

from __future__ import annotations

import asyncio
import shutil
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
class Call:
    """A recorded call: its folder and its tracks' summaries by name."""

    folder: Path
    summaries: dict[str, TrackSummary]

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.folder, dest)
        return dest


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


ALICE = Publisher("alice", tone=1000, seconds=6.0, video_delay=0.5)
BOB = Publisher("bob", tone=2500, seconds=4.5, start_delay=1.3, size="240x320")


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
            video = StreamSpec(
                name=f"{pub.id}-video-0", codec=Codec.VP8, payload_type=96, clock_rate=90000, port=vport,
                rtcp_port=vport + 1,
            )  # fmt: skip
            await session.add_track(video)
        if aport is not None:
            audio = StreamSpec(
                name=f"{pub.id}-audio-1", codec=Codec.OPUS, payload_type=111, clock_rate=48000, channels=2,
                port=aport, rtcp_port=aport + 1,
            )  # fmt: skip
            await session.add_track(audio)
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


def video_luma(
    path: Path, regions: dict[str, tuple[int, int, int, int]]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
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


def flash_onsets(
    times: np.ndarray, luma: np.ndarray, after: float = 0.0, threshold: float = 128.0
) -> list[float]:
    """Times of the frames where the region turns bright."""
    bright = luma > threshold
    return [
        float(times[i]) for i in range(1, len(times)) if bright[i] and not bright[i - 1] and times[i] >= after
    ]


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


# -- a synthetic long call -----------------------------------------------------------------------------

NTP_UNIX = 2_208_988_800


@dataclass
class SyntheticParticipant:
    id: str
    tone: int
    start: float  # true seconds after the call's start that its media begins
    phase: float  # its flashes and beeps are where frac(true time + phase) < PULSE
    audio_drift_ppm: float  # its audio RTP clock runs this fast (negative: slow)
    sender_skew: float  # its NTP clock minus the recorder's wall clock
    audio_delay: float = 0.004  # network delay of its first audio frame
    video_delay: float = 0.030  # ... and of its first video frame (a keyframe: larger)


def _ntp(unix: float) -> int:
    whole = int(unix // 1)
    return ((whole + NTP_UNIX) << 32) | min(0xFFFFFFFF, round((unix - whole) * 2**32))


def _mux_packets(path: Path, codec: str, rate: int, frames: list, pts_ms: list[int], **opts: object) -> None:
    """Encode `frames` in order and write the packets with the given timestamps (ms)."""
    with av.open(str(path), "w", format="webm") as out:
        if codec == "libopus":
            stream = out.add_stream(codec, rate=rate, layout="stereo")
        else:
            stream = out.add_stream(
                codec, rate=rate, options={"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
            )
            stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        packets = []
        for frame in frames:
            packets += stream.encode(frame)
        packets += stream.encode(None)
        while len(pts_ms) < len(packets):  # the Opus encoder's padding adds a packet at the end
            pts_ms = [*pts_ms, pts_ms[-1] + 20]
        from fractions import Fraction

        for packet, ms in zip(packets, pts_ms, strict=True):
            packet.pts = packet.dts = ms
            packet.time_base = Fraction(1, 1000)
            packet.stream = stream
            out.mux(packet)


def write_synthetic_call(
    folder: Path, parts: list[SyntheticParticipant], windows: list[tuple[float, float]], call_seconds: float
) -> float:
    """A recording folder as the recorder leaves it (track files + summaries with wall clocks and SRs) of
    a call `call_seconds` long whose media exist only inside `windows` (media seconds): the timestamps
    in between are advanced as after a long stretch of lost media. Returns the call's wall-clock start."""
    folder.mkdir(parents=True, exist_ok=True)
    r0 = 1_800_000_000.0
    for p in parts:
        duration = call_seconds - p.start
        # Video: 30 fps on an accurate clock.
        frames, pts, white = [], [], []
        for a, b in windows:
            for k in range(round(a * 30), round(min(b, duration) * 30)):
                m = k / 30
                white.append(((m + p.start + p.phase) % PERIOD) < PULSE)
                pts.append(round(m * 1000))
        for i, w in enumerate(white):
            f = av.VideoFrame.from_ndarray(np.full((180, 320, 3), 255 if w else 0, np.uint8), format="rgb24")
            f.pts = i
            frames.append(f.reformat(format="yuv420p"))
        _mux_packets(folder / f"{p.id}-video-0.webm", "libvpx", 30, frames, pts)
        # Audio: 48 kHz samples counted by a clock that runs audio_drift_ppm fast.
        rate = 48000 * (1 + p.audio_drift_ppm * 1e-6)  # sender ticks per true second
        aframes, apts = [], []
        count = 0
        for a, b in windows:
            n0, n1 = round(a * rate) // 960 * 960, round(min(b, duration) * rate) // 960 * 960
            n = np.arange(n0, n1)
            true = n / rate
            on = ((true + p.start + p.phase) % PERIOD) < PULSE
            mono = np.where(on, 0.5 * np.sin(2 * np.pi * p.tone * true), 0.0).astype(np.float32)
            for j in range(0, len(mono), 960):
                chunk = np.repeat(mono[j : j + 960], 2).reshape(1, -1)
                f = av.AudioFrame.from_ndarray(chunk, format="flt", layout="stereo")
                f.sample_rate, f.pts = 48000, count
                count += 960
                aframes.append(f)
                apts.append(round((n0 + j) / 48))
        _mux_packets(folder / f"{p.id}-audio-1.webm", "libopus", 48000, aframes, apts)
        for kind, clock, delay, ticks_per_s, n_frames in (
            ("video", 90000, p.video_delay, 90000.0, len(frames)),
            ("audio", 48000, p.audio_delay, rate, len(aframes)),
        ):
            reports = [
                (_ntp(r0 + p.start + t + p.sender_skew), round(t * ticks_per_s))
                for t in np.arange(5.0, duration, 5.0)
            ]
            summary = TrackSummary(
                name=f"{p.id}-{kind}-{0 if kind == 'video' else 1}", state="complete", kind=kind,
                codec=Codec.VP8 if kind == "video" else Codec.OPUS, clock_rate=clock, payload_type=96,
                file=f"{p.id}-{kind}-{0 if kind == 'video' else 1}.webm", container="webm",
                first_rtp_timestamp=0, last_rtp_timestamp=round(duration * ticks_per_s),
                first_wallclock=r0 + p.start + delay, last_wallclock=r0 + p.start + duration + delay,
                frames=n_frames, keyframes=1, width=320 if kind == "video" else None,
                height=180 if kind == "video" else None, rtcp_sender_reports=reports,
            )  # fmt: skip
            (folder / f"{summary.name}.json").write_text(summary.model_dump_json(indent=2))
    return r0
