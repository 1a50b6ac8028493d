"""`callvault demo` (what `make demo` runs): the main job on one machine, as root.

Janus (Debian's) runs in a private network namespace (ICE does not work on loopback), `callvault serve`
follows it with the archive on (local store, signed manifests, webhooks) and composites on, a webhook
receiver in this process checks every delivery's Standard Webhooks signature, and two aiortc publishers
(the `demo` extra) hold a short call. The demo then prints who took part, each track with its frames, the
composite, the webhooks received and verified, and what `callvault verify --public-key` says of the stored
recording; it leaves the service running with its API (forwarded to the host's 127.0.0.1) until Ctrl-C,
or exits after `--seconds`. Everything binds to loopback or to the namespace's own addresses.

`callvault demo --rtp` is the older, smaller demo (no root, no Janus): ffmpeg sends a live VP8 + Opus
call as plain RTP, `record-rtp` records it and `composite` builds its composite."""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from recorder.cli import main as cli_main

SDP = """v=0
o=- 0 0 IN IP4 127.0.0.1
s=CallVault demo
c=IN IP4 127.0.0.1
t=0 0
m=video {video} RTP/AVP 96
a=rtpmap:96 VP8/90000
m=audio {audio} RTP/AVP 97
a=rtpmap:97 opus/48000/2
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="a real call recorded on this machine: Janus, two WebRTC publishers, serve (needs root)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("demo-out"),
        help="folder for everything it writes (default demo-out)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="exit this many seconds after the summary (default: keep serving until Ctrl-C); with --rtp:"
        " the length of the call (default 10)",
    )
    p.add_argument("--call-seconds", type=float, default=8.0, help="how long the first publisher publishes")
    p.add_argument(
        "--api-port",
        type=int,
        default=8080,
        help="port on the host's 127.0.0.1 forwarded to the service's API in the namespace (0: any free;"
        " taken: any free)",
    )
    p.add_argument(
        "--rtp",
        action="store_true",
        help="the older demo instead: ffmpeg-sent RTP recorded by record-rtp (no root, no Janus)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rtp:
        return run_rtp(args)
    from recorder.demo.live import run_live  # noqa: PLC0415 - the live demo's imports only when it runs

    return run_live(args)


def free_port_pair() -> int:
    """An even UDP port whose successor is free too (RTP + RTCP)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1] & ~1
        try:
            for p in (port, port + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as t:
                    t.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise OSError("no free UDP port pair on 127.0.0.1")


def run_rtp(args: argparse.Namespace) -> int:
    """The older demo: ffmpeg -> plain RTP -> record-rtp -> composite."""
    seconds = 10.0 if args.seconds is None else args.seconds
    if shutil.which("ffmpeg") is None:
        print("callvault: error: the demo needs ffmpeg (apt-get install ffmpeg)", file=sys.stderr)
        return 2
    video, audio = free_port_pair(), free_port_pair()
    args.out.mkdir(parents=True, exist_ok=True)
    sdp = args.out / "demo.sdp"
    sdp.write_text(SDP.format(video=video, audio=audio))
    name = time.strftime("demo-%Y%m%dT%H%M%S")
    sender = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds + 2),
        "-map", "0:v", "-c:v", "libvpx", "-b:v", "1M", "-g", "60", "-deadline", "realtime", "-cpu-used", "8",
        "-payload_type", "96", "-f", "rtp", f"rtp://127.0.0.1:{video}?rtcpport={video + 1}",
        "-map", "1:a", "-c:a", "libopus", "-b:a", "48k",
        "-payload_type", "97", "-f", "rtp", f"rtp://127.0.0.1:{audio}?rtcpport={audio + 1}",
    ]  # fmt: skip
    print(f"sending a live VP8 + Opus call with ffmpeg to 127.0.0.1:{video} and :{audio} ...")
    proc = subprocess.Popen(sender, stdout=subprocess.DEVNULL)
    try:
        status = cli_main(
            ["record-rtp", "--sdp", str(sdp), "--out", str(args.out), "--duration", str(seconds),
             "--name", name, "--segment-seconds", "2"]
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    folder = args.out / name
    if status == 0:
        print("\nbuilding the composite of the call (what `callvault serve` does when a call ends) ...")
        status = cli_main(["composite", str(folder), "--profile", "sd", "--no-progress"])
    print("\nfiles:")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            print(f"  {path}  ({path.stat().st_size} bytes)")
    if shutil.which("ffprobe"):
        for path in sorted([*folder.glob("*.webm"), *folder.glob("*.mp4")]):
            info = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height:format=duration",
                 "-of", "compact", str(path)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            print(f"ffprobe {path.name}: {info.stdout.strip()} {info.stderr.strip()}")
    return status
