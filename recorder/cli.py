"""The `callvault` command line. Each subcommand lives in recorder/commands/<name>.py and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable taking the parsed
arguments and returning the exit status."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from recorder import __version__

# Subcommand modules, in the order `callvault --help` lists them.
COMMANDS = ("serve", "record_rtp", "finalize", "verify", "demo", "composite")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callvault", description="Record WebRTC calls from an SFU.")
    parser.add_argument("--version", action="version", version=f"callvault {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"recorder.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
