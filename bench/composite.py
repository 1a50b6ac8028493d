"""Composite benchmark: the same two-party call through CallVault's composite and through an ffmpeg
filter-graph pipeline (scale + pad per tile, xstack, amix; the same encoder settings), side by side.

    .venv/bin/python bench/composite.py --seconds 60 --profile hd

Inputs, made once by Debian's ffmpeg and laid out as a recording folder (track files + summaries): an
agent with a 1280x720 camera and a customer with a 640x480 camera (both VP8 at 30 fps, about 1.5 and
0.8 Mbit/s, testsrc2 so that every frame changes) and Opus audio, the customer joining 2 s after the agent.
Both pipelines make a side-by-side MP4 (H.264 at the profile's bitrate with the same x264 preset, AAC 128k,
+faststart) at the same frame rate. Prints, for every run, the load average before it, wall time, speed as a
multiple of real time and CPU time; then min/median/max of each and the ratio of the medians.

Quality (on unless --no-quality): SSIM and PSNR (ffmpeg's ssim/psnr filters, from 3 s on) of each output's
video against that pipeline's own pictures before encoding: for ffmpeg the same filter graph, not encoded;
for CallVault the same composite encoded losslessly (x264 qp 0), made without names and clock, as the
graph draws no text. (The two pipelines' pictures differ by the scaler, bicubic in the graph, bilinear in
CallVault, and by which camera frame is shown at an output instant: the nearest in ffmpeg's fps filter,
the latest not after it in CallVault. Comparing one pipeline's output with the other's would count that as
loss.) x264 threading is each pipeline's best: ffmpeg's own (frame threads), CallVault's choice (slice
threads at ultrafast, frame threads otherwise; postprocess/encode.py). ffmpeg's graph: each camera `fps,scale=...:force_original_aspect_ratio=decrease,pad` into half the
frame, the late joiner delayed with `tpad`/`adelay`, `xstack` and `amix`.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from postprocess import encode  # noqa: E402
from postprocess.composite import build_composite  # noqa: E402
from postprocess.options import DEFAULT_VIDEO_BITRATES, CompositeOptions, Profile  # noqa: E402
from recorder.models import Codec, MediaKind, TrackSummary  # noqa: E402

JOIN_DELAY = 2.0
CAMERAS = {"agent": ("1280x720", "1500k", 880), "customer": ("640x480", "800k", 440)}


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_inputs(folder: Path, seconds: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    t0 = 1_800_000_000.0
    for i, (pid, (size, rate, hz)) in enumerate(CAMERAS.items()):
        start = i * JOIN_DELAY
        length = seconds - start
        video, audio = folder / f"{pid}-video-0.webm", folder / f"{pid}-audio-1.webm"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-t", str(length), "-c:v", "libvpx",
               "-b:v", rate, "-g", "60", "-deadline", "realtime", "-cpu-used", "8", str(video))  # fmt: skip
        ffmpeg("-f", "lavfi", "-i", f"sine=frequency={hz}:sample_rate=48000", "-t", str(length), "-ac", "2",
               "-c:a", "libopus", "-b:a", "48k", str(audio))  # fmt: skip
        for name, kind, codec, clock, path in (
            (f"{pid}-video-0", MediaKind.VIDEO, Codec.VP8, 90000, video),
            (f"{pid}-audio-1", MediaKind.AUDIO, Codec.OPUS, 48000, audio),
        ):
            frames = round(length * (30 if kind is MediaKind.VIDEO else 50))
            summary = TrackSummary(
                name=name, state="complete", kind=kind, codec=codec, clock_rate=clock, payload_type=96,
                file=path.name, container="webm", first_rtp_timestamp=0,
                last_rtp_timestamp=round(length * clock), first_wallclock=t0 + start,
                last_wallclock=t0 + start + length, frames=frames - 2,
            )  # fmt: skip
            (folder / f"{name}.json").write_text(summary.model_dump_json(indent=2))


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def video_graph(profile: Profile, fps: int, agent: int, customer: int) -> str:
    """The ffmpeg graph's side-by-side video from inputs `agent` and `customer`, as [v]."""
    width, height = profile.size
    half = width // 2
    tile = f"fps={fps},scale={half}:{height}:force_original_aspect_ratio=decrease:force_divisible_by=2,pad={half}:{height}:(ow-iw)/2:(oh-ih)/2"
    return (
        f"[{agent}:v]{tile}[a];"
        f"[{customer}:v]{tile},tpad=start_duration={JOIN_DELAY}:color=black[b];"
        "[a][b]xstack=inputs=2:layout=0_0|w0_0[v]"
    )


def quality(
    folder: Path, output: Path, profile: Profile, fps: int, reference: Path | None = None, skip: float = 3.0
) -> tuple[float, float]:
    """(SSIM, PSNR dB) of `output`'s video against `reference`'s, or the ffmpeg graph's uncompressed
    pictures."""
    source = "[3:v]" if reference is not None else video_graph(profile, fps, 1, 2) + ";[v]"
    graph = (
        f"{source}trim=start={skip},setpts=PTS-STARTPTS,split[r1][r2];"
        f"[0:v]trim=start={skip},setpts=PTS-STARTPTS,split[d1][d2];"
        "[d1][r1]ssim[s];[d2][r2]psnr[p]"
    )
    args = ["ffmpeg", "-hide_banner", "-nostats", "-i", str(output), "-i", str(folder / "agent-video-0.webm"),
            "-i", str(folder / "customer-video-0.webm"), "-filter_complex", graph,
            *(["-i", str(reference)] if reference is not None else []),
            "-map", "[s]", "-f", "null", "-", "-map", "[p]", "-f", "null", "-"]  # fmt: skip
    err = subprocess.run(args, capture_output=True, text=True, check=True).stderr
    ssim = re.search(r"SSIM .*All:([0-9.]+)", err)
    psnr = re.search(r"PSNR .*average:([0-9.inf]+)", err)
    assert ssim and psnr, err
    return float(ssim.group(1)), float(psnr.group(1))


def run_ffmpeg(
    folder: Path, out: Path, profile: Profile, fps: int, preset: str, bitrate: int
) -> tuple[float, float]:
    graph = (
        video_graph(profile, fps, 0, 2) + ";"
        f"[3:a]adelay={int(JOIN_DELAY * 1000)}:all=1[ca];"
        "[1:a][ca]amix=inputs=2:duration=longest:normalize=0,alimiter=limit=0.89[mix]"
    )
    args = ["-i", str(folder / "agent-video-0.webm"), "-i", str(folder / "agent-audio-1.webm"),
            "-i", str(folder / "customer-video-0.webm"), "-i", str(folder / "customer-audio-1.webm"),
            "-filter_complex", graph, "-map", "[v]", "-map", "[mix]",
            "-c:v", "libx264", "-preset", preset, "-b:v", str(bitrate), "-maxrate", str(bitrate * 3 // 2),
            "-bufsize", str(bitrate * 2), "-g", str(fps * 2), "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2", "-movflags", "+faststart", str(out)]  # fmt: skip
    cpu0, t0 = cpu_children(), time.monotonic()
    ffmpeg(*args)
    return time.monotonic() - t0, cpu_children() - cpu0


def run_callvault(
    folder: Path, out: Path, profile: Profile, fps: int, preset: str, bitrate: int, text: bool = True
) -> tuple[float, float]:
    options = CompositeOptions(layout="side-by-side", profile=profile, fps=fps, preset=preset,
                               video_bitrate=bitrate, out=out, names=text, timestamp=text)  # fmt: skip
    cpu0, t0 = cpu_self(), time.monotonic()
    build_composite(folder, options)
    return time.monotonic() - t0, cpu_self() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--profile", choices=[p.value for p in Profile], default="hd")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--preset", default=CompositeOptions().preset, help="x264 preset for both")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (interleaved)")
    parser.add_argument("--no-quality", action="store_true", help="skip the SSIM/PSNR comparison")
    parser.add_argument("--keep", type=Path, help="keep inputs and outputs in this folder")
    args = parser.parse_args()
    profile = Profile(args.profile)
    bitrate = DEFAULT_VIDEO_BITRATES[profile]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        folder = work / "rec"
        if not (folder / "customer-audio-1.json").exists():
            make_inputs(folder, args.seconds)
        print(
            f"call: {args.seconds:.0f} s, agent 1280x720 + customer 640x480 VP8@30 (joins at {JOIN_DELAY:.0f} s); "
            f"output {profile.value} {profile.size[0]}x{profile.size[1]}@{args.fps} H.264 {bitrate // 1000}k "
            f"preset {args.preset} + AAC 128k; {os.cpu_count()} cores"
        )
        runs: dict[str, list[tuple[float, float]]] = {"callvault": [], "ffmpeg": []}
        for i in range(args.runs):  # interleaved, so that load from elsewhere hits both alike
            for name, fn in (("callvault", run_callvault), ("ffmpeg", run_ffmpeg)):
                load = os.getloadavg()
                wall, cpu = fn(folder, work / f"{name}.mp4", profile, args.fps, args.preset, bitrate)
                runs[name].append((wall, cpu))
                print(
                    f"run {i + 1} {name:9s} load before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}: wall {wall:6.2f} s "
                    f"({args.seconds / wall:5.1f}x real time), CPU {cpu:6.2f} s"
                )
        medians = {}
        for name, r in runs.items():
            walls, cpus = sorted(w for w, _ in r), sorted(c for _, c in r)
            medians[name] = (statistics.median(walls), statistics.median(cpus))
            print(
                f"{name:10s} wall min/median/max {walls[0]:.2f} / {medians[name][0]:.2f} / {walls[-1]:.2f} s "
                f"= {args.seconds / walls[-1]:.1f} / {args.seconds / medians[name][0]:.1f} / "
                f"{args.seconds / walls[0]:.1f}x real time; CPU min/median/max {cpus[0]:.2f} / {medians[name][1]:.2f}"
                f" / {cpus[-1]:.2f} s ({medians[name][1] / args.seconds * 100:.1f}% of a core per call-second)"
            )
        print(
            f"ratio of medians: CallVault is {medians['ffmpeg'][0] / medians['callvault'][0]:.2f}x the speed of the "
            f"ffmpeg pipeline (CPU {medians['ffmpeg'][1] / medians['callvault'][1]:.2f}x)"
        )
        if not args.no_quality:
            plain, lossless = work / "callvault-notext.mp4", work / "callvault-lossless.mp4"
            run_callvault(folder, plain, profile, args.fps, args.preset, bitrate, text=False)
            codec = encode._video_codec
            encode._video_codec = lambda o, t: (codec(o, t)[0], {**codec(o, t)[1], "qp": "0"})
            try:
                run_callvault(folder, lossless, profile, args.fps, args.preset, bitrate, text=False)
            finally:
                encode._video_codec = codec
            try:
                for name, path, reference in (("callvault", plain, lossless),
                                              ("ffmpeg", work / "ffmpeg.mp4", None)):  # fmt: skip
                    ssim, psnr = quality(folder, path, profile, args.fps, reference)
                    print(
                        f"quality {name:10s} SSIM {ssim:.4f}  PSNR {psnr:.2f} dB  (against its own pictures before encoding, from 3 s)"
                    )
            finally:
                lossless.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
