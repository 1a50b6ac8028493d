"""Logging of every `callvault` command: one handler on stderr, text or JSON (one object per line).

    callvault --log-level debug --log-format json serve ...     # or log.level / log.format in settings
    log.info("recording started", extra=ids(room=room, recording=rid))

`configure()` installs the handler (again: it replaces its own, never adds a second) and routes the
`warnings` module through logging, so a warning is printed once, in the chosen format. The HTTP access
log (`AccessLogger`) never prints a query parameter that may hold a credential (`?token=`, `?key=`...).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["text", "json"]
LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error", "critical")
FORMATS: tuple[LogFormat, ...] = ("text", "json")
DEFAULT_LEVEL: LogLevel = "info"
DEFAULT_FORMAT: LogFormat = "text"

ID_FIELDS = ("recording_id", "room_id", "participant_id")
"""The attributes `ids()` sets on a log record; both formats print them as separate fields."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogSettings(BaseModel):
    """The `log` section of the service's settings; `--log-level`/`--log-format` override it."""

    model_config = ConfigDict(extra="forbid")

    level: LogLevel = Field(
        default=DEFAULT_LEVEL, description="Least severe level logged: debug, info, warning, error, critical."
    )
    format: LogFormat = Field(
        default=DEFAULT_FORMAT,
        description="text (one line per record) or json (one JSON object per line: time, level, logger,"
        " message, and recording_id/room_id/participant_id when the record names them).",
    )

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def ids(
    *, recording: object | None = None, room: object | None = None, participant: object | None = None
) -> dict[str, str]:
    """`extra=` for a log call about a recording, room or participant: printed as separate fields."""
    named = (("recording_id", recording), ("room_id", room), ("participant_id", participant))
    return {field: str(value) for field, value in named if value is not None}


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """What the log call passed with `extra=`, id fields first."""
    fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    return {**{k: fields.pop(k) for k in ID_FIELDS if k in fields}, **fields}


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`, then the ids the record names (`recording_id=...`)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        named = [f"{k}={getattr(record, k)}" for k in ID_FIELDS if getattr(record, k, None) is not None]
        return f"{line} [{' '.join(named)}]" if named else line

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (RFC 3339, UTC), level, logger, message, the
    record's `extra=` fields (recording_id, room_id, participant_id...), and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        entry: dict[str, Any] = {
            "time": when.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(
                key, value if isinstance(value, int | float | bool) or value is None else str(value)
            )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        clean = {key: scrub(value) if isinstance(value, str) else value for key, value in entry.items()}
        return json.dumps(clean, ensure_ascii=False)


# -- secrets never printed ---------------------------------------------------------------------------------

_hidden: set[str] = set()
MIN_HIDDEN = 8
"""Shorter values are not hidden in log text: masking them would garble every line (and they are no
secret anyway)."""

_SECRET_WORDS = ("token", "secret", "key", "pass", "pwd", "auth", "signature", "credential", "session")
_SECRET_NAMES = {"sig", "code", "jwt"}
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(\b[\w.%-]*(?:" + "|".join(_SECRET_WORDS) + r")[\w.%-]*=)([^&;\s'\"\\<>]+)"
)
REDACTED = "REDACTED"


def hide(*values: str) -> None:
    """Never print these values (configured secrets) in a log record, wherever they show up."""
    _hidden.update(v for v in values if len(v) >= MIN_HIDDEN)


def scrub(text: str) -> str:
    """`text` without hidden values and with `token=...`-like assignments (a URL's query, a request
    line aiohttp quotes in an error) redacted."""
    for value in _hidden:
        if value in text:
            text = text.replace(value, REDACTED)
    return _SECRET_ASSIGNMENT.sub(rf"\1{REDACTED}", text)


def secrets_of(settings: BaseModel) -> list[str]:
    """Every secret in `settings` (nested): SecretStr values, the string values of fields whose name
    says they hold one (SECRET_FIELDS: plain `str` settings such as janus.api_secret), and the values of
    the environment variables that `*_env` fields name (the signing key's CALLVAULT_SIGNING_KEY...)."""
    found: list[str] = []

    def walk(value: Any, name: str) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, str):
            if name in SECRET_FIELDS:
                found.append(value)
            elif name.endswith("_env") and os.environ.get(value):
                found.append(os.environ[value])
        elif isinstance(value, BaseModel):
            for field in type(value).model_fields:
                walk(getattr(value, field), field)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item, name)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item, name)

    walk(settings, "")
    return found


SECRET_FIELDS = frozenset(
    {"api_secret", "admin_key", "room_secret", "room_secrets", "events_token", "events_basic_auth", "secret"}
)
"""Settings held as plain strings that are secrets (janus.*): hidden in the log like SecretStr ones."""


class _Handler(logging.StreamHandler[TextIO]):
    """The handler `configure` installs; the class marks it as ours, to replace and not add to."""


def configure(
    level: LogLevel | None = None, log_format: LogFormat | None = None, stream: TextIO | None = None
) -> None:
    """Log to `stream` (stderr) at `level` in `log_format`; None keeps what an earlier call chose (a command
    running another, as `demo` does) or the default, info and text.

    Like `logging.basicConfig`, it leaves a root logger that someone else gave handlers (a test
    runner's capture) alone."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _Handler)]
    if len(ours) != len(root.handlers):
        return
    previous = ours[0] if ours else None
    if level is None:
        level = _level_name(root.level) if previous is not None else DEFAULT_LEVEL
    if log_format is None:
        log_format = (
            "json" if previous is not None and isinstance(previous.formatter, JsonFormatter) else "text"
        )
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    for old in ours:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # warnings.warn(): once, through the handler, not also by `warnings`


def requested(args: argparse.Namespace) -> tuple[LogLevel | None, LogFormat | None]:
    """(level, format) a command line asks for (`--log-level`, `-v`: debug, `--log-format`); None where
    it says nothing."""
    level: LogLevel | None = getattr(args, "log_level", None)
    if level is None and getattr(args, "verbose", False):
        level = "debug"
    return level, getattr(args, "log_format", None)


def _level_name(level: int) -> LogLevel:
    name = logging.getLevelName(level).lower()
    return next((known for known in LEVELS if known == name), DEFAULT_LEVEL)


# -- the HTTP access log ----------------------------------------------------------------------------------


def secret_parameter(name: str) -> bool:
    """Whether a query parameter of this name may carry a credential (token, api_key, password...)."""
    folded = name.lower().replace("-", "").replace("_", "")
    return folded in _SECRET_NAMES or any(word in folded for word in _SECRET_WORDS)


def redacted_query(query: str) -> str:
    """A raw (percent-encoded) query string with the values of credential-like parameters replaced."""
    parts = []
    for part in query.split("&"):
        name = part.partition("=")[0]
        parts.append(f"{name}={REDACTED}" if secret_parameter(unquote_plus(name)) else part)
    return "&".join(parts)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without credentials: the request line's query with credential-like
    parameters redacted, no Referer (it may carry a query too), no request headers but User-Agent.

    `remote "METHOD /path?query HTTP/1.1" status bytes seconds "user agent"`, with the same as `extra=`
    fields (remote, method, path, status, bytes, duration) for the JSON format."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        query = request.rel_url.raw_query_string  # percent-encoded, as the path: no line breaks
        path = request.rel_url.raw_path + (f"?{redacted_query(query)}" if query else "")
        version = f"HTTP/{request.version.major}.{request.version.minor}"
        agent = request.headers.get("User-Agent", "-")
        fields = {
            "remote": request.remote or "-",
            "method": request.method,
            "path": path,
            "status": response.status,
            "bytes": response.body_length,
            "duration": round(time, 6),
        }
        self.logger.info(
            '%s "%s %s %s" %d %d %.6f "%s"',
            fields["remote"],
            request.method,
            path,
            version,
            response.status,
            response.body_length,
            time,
            agent,
            extra=fields,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
