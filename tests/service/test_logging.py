"""Logs of every `callvault` command: --log-level/--log-format (and serve's log.* settings, which the
command line overrides), JSON lines with ids as fields, each warning printed once, configuration errors
as one line, and every command's --help showing the defaults."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from janus_fixture import free_port
from serve_process import CALLVAULT, request, start, stop, wait_http

from recorder.cli import COMMANDS, build_parser

pytestmark = pytest.mark.timeout(120)


def service_config(tmp_path: Path, port: int, extra: str = "") -> str:
    """Janus off (nothing to wait for), the API on: a quick start with a warning (no API keys) and
    info lines (catalog, listening)."""
    return (
        f'data_dir = "{tmp_path / "data"}"\nhttp_host = "127.0.0.1"\nhttp_port = {port}\n'
        f"{extra}\n[janus]\nenabled = false\n"
    )


def run_service(
    tmp_path: Path,
    *options: str,
    extra: str = "",
    env: dict[str, str] | None = None,
    serve_options: tuple[str, ...] = (),
) -> str:
    """Everything `callvault [options] serve [serve_options]` prints from its start to SIGTERM, with
    one request."""
    port = free_port()
    config = service_config(tmp_path, port, extra)
    proc = start(tmp_path, config, *options, env=env, serve_options=serve_options)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        assert request(f"http://127.0.0.1:{port}/healthz?probe=1")[0] == 200
    finally:
        code, out = stop(proc)
    assert code == 0, out
    return out


def json_lines(out: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in out.splitlines()]
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert isinstance(entry["time"], str) and entry["time"].endswith("Z")
        assert datetime.fromisoformat(entry["time"]).utcoffset() is not None  # RFC 3339, UTC
    return entries


def test_log_format_json_prints_one_object_per_line(tmp_path: Path) -> None:
    entries = json_lines(run_service(tmp_path, "--log-format", "json"))
    levels = {(e["logger"], e["level"]) for e in entries}
    assert ("callvault.serve", "info") in levels and ("recorder.api.app", "warning") in levels, levels
    (access,) = [
        e for e in entries if e["logger"] == "aiohttp.access" and e.get("path") == "/healthz?probe=1"
    ]
    assert access["method"] == "GET" and access["status"] == 200, access


def test_log_level_after_the_command_and_format_from_the_environment(tmp_path: Path) -> None:
    out = run_service(
        tmp_path, env={"CALLVAULT_LOG__FORMAT": "json"}, serve_options=("--log-level", "warning")
    )
    entries = json_lines(out)
    assert entries and {e["level"] for e in entries} == {"warning"}, entries


def test_settings_choose_the_logs_and_the_command_line_overrides_them(tmp_path: Path) -> None:
    settings = '[log]\nlevel = "warning"\nformat = "json"\n'
    entries = json_lines(run_service(tmp_path / "a", extra=settings))
    assert entries and {e["level"] for e in entries} == {"warning"}, entries
    out = run_service(tmp_path / "b", "--log-level", "debug", "--log-format", "text", extra=settings)
    assert " DEBUG " in out and " INFO callvault.serve: callvault serve listening" in out, out
    assert not out.lstrip().startswith("{")


def test_verbose_means_debug(tmp_path: Path) -> None:
    out = run_service(tmp_path, "-v", extra='[log]\nlevel = "error"\n')
    assert " DEBUG " in out, out


def record(message: str, **extra: str) -> logging.LogRecord:
    entry = logging.LogRecord("callvault.test", logging.WARNING, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_ids_are_separate_fields() -> None:
    from recorder.logs import JsonFormatter, TextFormatter, ids

    named = ids(room=1234, recording="r-1", participant=None)
    assert named == {"room_id": "1234", "recording_id": "r-1"}
    entry = json.loads(JsonFormatter().format(record("track started", **named)))
    assert entry["message"] == "track started" and entry["level"] == "warning"
    assert entry["room_id"] == "1234" and entry["recording_id"] == "r-1" and "participant_id" not in entry
    text = TextFormatter().format(record("track started", **ids(recording="r-1", participant="p7")))
    assert text.endswith("WARNING callvault.test: track started [recording_id=r-1 participant_id=p7]")


def test_ids_reach_the_log_through_extra() -> None:
    script = (
        "import logging, sys\n"
        "from recorder import logs\n"
        "logs.configure('info', 'json')\n"
        "logging.getLogger('callvault.x').info('started', extra=logs.ids(room='r9', recording='rec-1'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    (entry,) = json_lines(result.stderr)
    assert entry["room_id"] == "r9" and entry["recording_id"] == "rec-1" and entry["message"] == "started"


def test_a_warning_is_printed_once() -> None:
    """Through one handler however often logging is set up (`demo` runs two commands), and a warnings
    module warning through logging only, not also by `warnings` itself."""
    script = (
        "import logging, warnings\n"
        "from recorder.cli import main\n"
        "from recorder import logs\n"
        "logs.configure('info', 'text')\n"
        "main(['--log-format', 'json', 'finalize', '/nonexistent-folder'])\n"
        "main(['finalize', '/nonexistent-folder'])\n"
        "logging.getLogger('callvault.x').warning('disk nearly full')\n"
        "warnings.warn('deprecated option', UserWarning)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    entries = json_lines(result.stderr)  # the second main() kept the first one's format
    messages = [str(e["message"]) for e in entries]
    assert messages.count("disk nearly full") == 1, result.stderr
    assert [m for m in messages if "deprecated option" in m] and len(entries) == 2, result.stderr


def test_configuration_error_is_one_line_without_pydantic(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[janus]\nvideo_pt = 3\nevents_token = "evt"\n[log]\nformat = "fancy"\n')
    result = subprocess.run(
        [*CALLVAULT, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr == (
        "callvault: error: invalid configuration: janus.video_pt: must be at least 96;"
        " log.format: Input should be 'text' or 'json'\n"
    ), result.stderr


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[janus]\nevents_token = "unterminated\n')
    result = subprocess.run(
        [*CALLVAULT, "serve", "--config", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"callvault: error: invalid configuration: {path}: ") and (
        result.stderr.count("\n") == 1 and "unterminated" not in result.stderr
    ), result.stderr


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"callvault": parser, **action.choices}


@pytest.mark.parametrize("command", ["callvault", *[c.replace("_", "-") for c in COMMANDS]])
def test_help_shows_every_default(command: str) -> None:
    parser = subparsers()[command]
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS):
            continue
        if isinstance(action, argparse._VersionAction | argparse._HelpAction):
            continue
        if action.help and "default" in action.help:  # written out ("default 128k"), as README says it
            continue
        shown = action.default.value if hasattr(action.default, "value") else action.default
        assert f"{action.option_strings[-1]} " in text and f"(default: {shown})" in text, (action.dest, text)
    for option in ("--log-level", "--log-format", "-v"):
        assert option in text
