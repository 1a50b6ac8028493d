"""`callvault record-pcap CAPTURE... --out DIR`: rebuild recorded tracks from their packet captures.

The captures are what a recording with capture on wrote (`<track>.capture/NNNNNN.pcapng`, docs/
forensics.md): every segment of a track, or of several tracks, in any order. Each track is replayed
through the same pipeline as a live recording and lands in DIR as `<track>.<ext>`, its segments and its
summary; the frames are the live recording's, bit for bit. A capture that is not CallVault's pcapng, is
truncated or lies about a length is refused with one line naming the file and the offset (exit 2) and
nothing is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from recorder.capture.reader import CaptureError
from recorder.capture.replay import load_tracks
from recorder.commands.record_rtp import report
from recorder.mjr.replay import replay_track
from recorder.models import TrackSummary
from recorder.summaries import summary_path

log = logging.getLogger("callvault.record_pcap")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("record-pcap", help="rebuild recorded tracks from their packet captures (pcapng)")
    p.add_argument("captures", nargs="+", type=Path, metavar="CAPTURE", help="capture segments (.pcapng)")
    p.add_argument("--out", required=True, type=Path, help="folder the tracks are rebuilt in")
    p.set_defaults(func=run)


def fail(message: str, status: int) -> int:
    print(f"callvault: error: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    try:
        tracks = load_tracks(args.captures)
    except CaptureError as exc:
        return fail(str(exc), 2)
    out: Path = args.out
    for track in tracks:
        if summary_path(out, track.spec.name).exists():
            return fail(f"{out} already holds track {track.spec.name}; rebuild into an empty folder", 2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return fail(f"cannot create {out}: {exc.strerror or exc}", 2)
    summaries: list[TrackSummary] = []
    for track in tracks:
        packets = ((t / 1e9, data) for t, data in track.packets)
        try:
            summaries.append(replay_track(out, track.spec, packets, track.settings))
        except OSError as exc:
            return fail(f"cannot write track {track.spec.name} into {out}: {exc.strerror or exc}", 1)
    report(out, summaries)
    return 0 if all(s.state == "complete" for s in summaries) else 1
