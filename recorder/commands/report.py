"""`callvault report RECORDING`: a forensic report of one recording (postprocess/forensics/), as a
self-contained HTML page and a PDF: a summary in plain words, the integrity verdict (manifest, hash
chains, signature), a timeline of joins, leaves, pauses and gaps, per-track bitrate, packet loss, RFC 3550
jitter, frame rate, keyframes and picture sizes (from the raw capture when the recording has one), A/V
sync and sender clock drift from RTCP sender reports, and what was lost and where.

RECORDING is a recording folder, or a recording id under `<data dir>/recordings/` (--data-dir, env
CALLVAULT_DATA_DIR, default ./callvault-data). The files are written into --out (default: the current
folder) as `<recording id>-report.html` and `.pdf`, never into the recording folder. Exit 0 when the
report was written (whatever it found), 2 when RECORDING is not a recording or cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recorder.commands.composite import recording_folder, recordings_dir
from recorder.manifest.signing import SigningKeyError, load_public_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="write a forensic report (HTML and PDF) of a recording",
        description="Write a forensic report of a recording: summary, integrity verdict, timeline, network"
        " plots, A/V sync, what was lost and where. RECORDING: a folder or a recording id.",
    )
    p.add_argument("folder", type=Path, metavar="RECORDING", help="a recording folder or a recording id")
    p.add_argument("--data-dir", type=Path, help="the service's data folder, to find a recording id in")
    p.add_argument("--out", type=Path, default=Path("."), help="folder to write the report into")
    p.add_argument("--public-key", type=Path, help="PEM Ed25519 key the manifest signature must verify with")
    p.add_argument("--no-pdf", action="store_true", help="only the HTML report")
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
    key = None
    if args.public_key is not None:
        try:
            key = load_public_key(args.public_key)
        except SigningKeyError as exc:
            print(f"callvault: error: {exc}", file=sys.stderr)
            return 2
    try:  # matplotlib is the optional extra `report`: imported only when a report is made
        from postprocess.forensics.report import make_report  # noqa: PLC0415
    except ImportError as exc:
        print(
            f"callvault: error: {exc}: install the report extra (pip install 'callvault[report]')",
            file=sys.stderr,
        )
        return 2
    try:
        result = make_report(folder, args.out, key, pdf=not args.no_pdf)
    except (ValueError, OSError) as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    for sentence in result.data.summary:
        print(sentence)
    print(
        f"report: {result.html}" + (f" and {result.pdf}" if result.pdf else "") + f" ({result.seconds:.1f} s)"
    )
    return 0
