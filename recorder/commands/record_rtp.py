"""`callvault record-rtp --sdp FILE --out DIR [--duration S]`: record every stream an SDP file describes.

This is what people do with ffmpeg or GStreamer for a mediasoup PlainTransport, without transcoding and
with crash-safe segments. Each run records into a new folder under DIR; segments a crashed run left in
DIR are finalized first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from recorder import eventloop
from recorder.config import RecorderSettings
from recorder.errors import SdpError
from recorder.ingest.track import Network
from recorder.models import StreamSpec, TrackSummary
from recorder.mux.containers import Container
from recorder.mux.recovery import recover_folder
from recorder.mux.workers import MuxWorkers
from recorder.names import check_id
from recorder.sdp import parse_sdp
from recorder.session import RecordingSession

log = logging.getLogger("callvault.record_rtp")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("record-rtp", help="record the RTP streams an SDP file describes")
    p.add_argument("--sdp", required=True, type=Path, help="SDP file describing the incoming streams")
    p.add_argument("--out", required=True, type=Path, help="folder to record into (a subfolder per run)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--segment-seconds", type=float, default=RecorderSettings().segment_seconds)
    p.add_argument(
        "--h264-container", choices=[Container.MATROSKA.value, Container.MP4.value], default="matroska"
    )
    p.add_argument(
        "--capture",
        action="store_true",
        help="also keep every RTP and RTCP packet as received in pcapng captures (docs/forensics.md)",
    )
    p.add_argument("--name", default=None, help="name of the recording folder (default: a UTC timestamp)")
    p.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="ADDR",
        help="address or network (CIDR) the RTP comes from; repeatable (default: any; each stream locks to"
        " the first valid packet's sender either way)",
    )
    p.set_defaults(func=run)


def fail(message: str, status: int) -> int:
    print(f"callvault: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    try:
        text = args.sdp.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read SDP file {args.sdp}: {exc}", 2)
    try:
        specs = parse_sdp(text)
    except SdpError as exc:
        return fail(f"{args.sdp}: {exc}", 2)
    if args.duration is not None and args.duration <= 0:
        return fail("--duration must be positive", 2)
    try:
        settings = RecorderSettings(
            segment_seconds=args.segment_seconds,
            h264_container=Container(args.h264_container),
            capture=args.capture,
        )
    except ValueError as exc:
        return fail(f"invalid setting: {exc}", 2)
    name = args.name or datetime.now(UTC).strftime("rec-%Y%m%dT%H%M%SZ")
    try:
        check_id(name, "--name")
        sources = [ipaddress.ip_network(s, strict=False) for s in args.source] if args.source else None
    except ValueError as exc:
        return fail(str(exc), 2)
    try:
        summaries = eventloop.run(record(specs, args.out, name, settings, args.duration, sources))
    except OSError as exc:
        return fail(f"cannot record: {exc}", 1)
    report(args.out / name, summaries)
    return 0 if all(s.state == "complete" for s in summaries) else 1


async def record(
    specs: list[StreamSpec],
    out: Path,
    name: str,
    settings: RecorderSettings,
    duration: float | None,
    sources: list[Network] | None = None,
) -> list[TrackSummary]:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    for summary in await asyncio.to_thread(recover_folder, out):
        log.info("finalized track %s left by an earlier run", summary.name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers = MuxWorkers(settings.mux_threads)
    session = RecordingSession(out / name, settings, workers, sources=sources)
    try:
        for spec in specs:
            await session.add_track(spec)
        log.info("recording into %s; stop with Ctrl-C", session.folder)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):  # not wait_for: on 3.11 it can swallow a cancel
                await stop.wait()
    finally:
        summaries = await session.stop()
        workers.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return summaries


def report(folder: Path, summaries: list[TrackSummary]) -> None:
    print(f"recording: {folder}")
    for s in summaries:
        seconds = 0.0
        if s.first_wallclock is not None and s.last_wallclock is not None:
            seconds = s.last_wallclock - s.first_wallclock
        where = folder / s.file if s.file else "(no media received)"
        print(
            f"  {s.name}: {s.codec.value} {s.state}, {s.frames} frames, {seconds:.1f} s,"
            f" {s.packets_lost} packets lost, {s.frames_dropped} frames dropped -> {where}"
        )
