"""`callvault finalize DIR`: join the segments a crash left under DIR into one file per track, and rewrite
each track's summary from what was recovered (recorder/mux/recovery.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recorder.mux.recovery import recover_folder


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("finalize", help="finalize tracks a crashed recorder left behind")
    p.add_argument("folder", type=Path)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.folder.is_dir():
        print(f"callvault: error: {args.folder} is not a folder")
        return 2
    summaries = recover_folder(args.folder)
    for s in summaries:
        if s.state == "recovered":
            seconds = s.duration or 0.0
            print(f"{args.folder}: recovered {s.name}: {s.frames} frames, {seconds:.2f} s -> {s.file}")
        else:
            print(f"{args.folder}: {s.state} {s.name}: {s.error}")
    if not summaries:
        print(f"{args.folder}: nothing to finalize")
    return 0
