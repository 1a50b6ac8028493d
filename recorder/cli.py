"""The `callvault` command line. Each subcommand lives in recorder/commands/<name>.py and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable taking the parsed
arguments and returning the exit status.

`--log-level`, `--log-format` and `-v` go before or after the command (`callvault serve --log-format
json`); `serve` reads them from its settings too (`log.level`, `log.format`), which they override."""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from recorder import __version__, logs

# Subcommand modules, in the order `callvault --help` lists them.
COMMANDS = (
    "serve",
    "record_rtp",
    "record_pcap",
    "finalize",
    "verify",
    "export",
    "decrypt",
    "public_key",
    "demo",
    "composite",
    "import_mjr",
    "catalog_copy",
    "report",
    "transcribe",
    "redact",
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, even an option without help; not when the help
    already says it, nor for flags and options without a default."""

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if not action.help or "default" in action.help.lower() or not _has_default(action):
            return action.help
        return f"{action.help} (default: %(default)s)"


def _has_default(action: argparse.Action) -> bool:
    if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return False  # store_true/store_false/store_const: a flag, its "default" says nothing
    return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)


class Parser(argparse.ArgumentParser):
    """The parser of `callvault` and of each command (add_subparsers makes its parsers of this class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def add_log_options(parser: argparse.ArgumentParser, command: str | None = None) -> None:
    """`-v`, `--log-level`, `--log-format`, on `callvault` and on each `command` (there with SUPPRESS as
    the default, so that options given before the command are not reset)."""
    default = None if command is None else argparse.SUPPRESS
    if command == "serve":
        level, form = "log.level, else info", "log.format, else text"
    else:
        level, form = logs.DEFAULT_LEVEL, logs.DEFAULT_FORMAT
        if command is None:
            level, form = f"{level}; serve: log.level", f"{form}; serve: log.format"
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default or False, help="same as --log-level debug"
    )
    group.add_argument(
        "--log-level",
        choices=logs.LEVELS,
        default=default,
        help=f"least severe level logged (default: {level})",
    )
    group.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=default,
        help=f"text, or json: one JSON object per line (time, level, logger, message, ids) (default: {form})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="callvault", description="Record WebRTC calls from an SFU.")
    parser.add_argument("--version", action="version", version=f"callvault {__version__}")
    add_log_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"recorder.commands.{name}").register(sub)
    for name, command in sub.choices.items():
        add_log_options(command, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(*logs.requested(args))
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
