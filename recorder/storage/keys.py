"""Object keys from a template.

The template is a `str.format` string with the fields `{date:<strftime>}` (the recording's start, UTC),
`{recording_id}`, `{room_id}` and `{name}` (the file's path relative to the recording folder, '/'
separated). It must end with `{name}`, so every object of a recording shares one prefix: the template
rendered with an empty name. Default: `{date:%Y/%m/%d}/{recording_id}/{name}`.
"""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime

from recorder import names

DEFAULT_KEY_TEMPLATE = "{date:%Y/%m/%d}/{recording_id}/{name}"
_FIELDS = {"date", "recording_id", "room_id", "name"}


def check_key_template(template: str) -> None:
    """Raise ValueError unless `template` only uses known fields and ends with `{name}`."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key template {template!r}: {exc}") from exc
    for _, field, _, _ in parsed:
        if field is not None and field not in _FIELDS:
            raise ValueError(f"key template {template!r}: unknown field {{{field}}}")
    if not template.endswith("{name}"):
        raise ValueError(f"key template {template!r} must end with {{name}}")
    if template.startswith("/"):
        raise ValueError(f"key template {template!r} must not start with '/'")


def check_id(value: str, what: str = "recording id") -> str:
    """Ids become key parts: letters, digits, '.', '_' and '-' only, at most 128 characters."""
    return names.check_id(value, what)


def check_name(name: str) -> str:
    """A relative '/'-separated path without '.', '..' or empty parts."""
    parts = name.split("/")
    if not name or any(p in {"", ".", ".."} for p in parts) or "\\" in name:
        raise ValueError(f"object name {name!r} must be a relative path without '.', '..' or empty parts")
    return name


def render_key(
    template: str, *, recording_id: str, name: str, date: datetime, room_id: str | None = None
) -> str:
    """The object key of `name` in a recording. `date` is converted to UTC."""
    check_id(recording_id)
    if name:
        check_name(name)
    if room_id is not None:
        check_id(room_id, "room id")
    day = date.astimezone(UTC) if date.tzinfo else date.replace(tzinfo=UTC)
    return template.format(date=day, recording_id=recording_id, room_id=room_id or "_", name=name)


def recording_prefix(template: str, *, recording_id: str, date: datetime, room_id: str | None = None) -> str:
    """The prefix every object key of the recording starts with."""
    return render_key(template, recording_id=recording_id, name="", date=date, room_id=room_id)


class _Wild:
    """Formats as a glob pattern: every strftime directive becomes '*'."""

    def __format__(self, spec: str) -> str:
        return re.sub(r"%.", "*", spec) if spec else "*"


def prefix_glob(template: str, *, recording_id: str) -> str:
    """A glob pattern matching the recording's prefix for any date and room (for lookups by id)."""
    check_id(recording_id)
    return template.format(date=_Wild(), recording_id=recording_id, room_id="*", name="")
