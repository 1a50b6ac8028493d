"""`callvault redact RECORDING`: a redacted copy of a recording's audio, spoken card numbers (found in its
transcript.json: run `callvault transcribe` first) and the intervals given with --interval replaced by
silence in every audio track. Written to `<recording>/redacted/` (the audio tracks, the masked
transcript, redactions.json); the folder's transcript is masked in place; the original media are kept.

`--interval 12.5-20 --reason "customer asked"` (seconds on the recording's timeline, repeatable) is the
manual path; `--no-auto` redacts only those. Exit 0 when written, 2 when it cannot be."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from recorder.commands.composite import recording_folder, recordings_dir

_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$")
MAX_REASON = 200


def interval(text: str) -> tuple[float, float]:
    m = _INTERVAL.match(text.strip())
    if not m or float(m[1]) >= float(m[2]):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected START-END in seconds, START < END (e.g. 12.5-20)"
        )
    return float(m[1]), float(m[2])


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "redact",
        help="silence spoken card numbers (and given intervals) in a copy of a recording",
        description="Write a redacted copy of a recording's audio into RECORDING/redacted/: spoken card"
        " numbers found in its transcript, and the --interval ranges, replaced by silence.",
    )
    p.add_argument("folder", type=Path, metavar="RECORDING", help="a recording folder or a recording id")
    p.add_argument("--data-dir", type=Path, help="the service's data folder, to find a recording id in")
    p.add_argument(
        "--interval",
        type=interval,
        action="append",
        default=[],
        metavar="START-END",
        help="seconds on the recording's timeline to silence (repeatable)",
    )
    p.add_argument("--reason", default="manual", help="why the --interval ranges are redacted")
    p.add_argument("--no-auto", action="store_true", help="do not look for card numbers in the transcript")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = recording_folder(args.folder, args.data_dir)
    if folder is None:
        print(
            f"callvault: error: {args.folder} is not a recording folder, nor a recording id under"
            f" {recordings_dir(args.data_dir)}",
            file=sys.stderr,
        )
        return 2
    reason = " ".join(str(args.reason).split())
    if not reason or len(reason) > MAX_REASON:
        print(f"callvault: error: --reason must be 1 to {MAX_REASON} characters", file=sys.stderr)
        return 2
    if args.no_auto and not args.interval:
        print("callvault: error: --no-auto needs at least one --interval", file=sys.stderr)
        return 2
    from postprocess.redact.audio import RedactError  # noqa: PLC0415
    from postprocess.redact.recording import redact_recording  # noqa: PLC0415
    from postprocess.transcribe.models import RedactionInterval, TranscriptError  # noqa: PLC0415

    manual = [RedactionInterval(start=s, end=e, reason=reason, rule="manual") for s, e in args.interval]
    try:
        report = redact_recording(folder, manual, auto=not args.no_auto)
    except (RedactError, TranscriptError) as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    for r in report.redactions:
        print(f"{r.start:8.2f}-{r.end:.2f} s  {r.rule:6}  {r.reason}")
    if not report.redactions:
        print("nothing to redact: no card number found")
    for t in report.tracks:
        print(f"{folder / t.file}: {t.packets_silenced} packets silenced")
    return 0
