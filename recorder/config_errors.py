"""Configuration errors as one line for an operator: the setting and the problem, never the value.

    callvault: error: invalid configuration: janus.video_pt: must be at least 96

pydantic's own text is not used: it spans lines, links to errors.pydantic.dev and echoes the bad input
(`input_value='...'`), which for `api.admin_key` or `janus.api_secret` is a secret.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_MESSAGES = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must be at least {min_length} characters long",
    "string_too_long": "must be at most {max_length} characters long",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "extra_forbidden": "unknown setting",
    "missing": "required",
}


def describe(error: Exception, config: Path | None = None) -> str:
    """One line saying which settings are wrong and why (no values): a ValidationError, a TOML syntax
    error of `config`, a missing or unreadable file, or a settings source's own error."""
    if isinstance(error, ValidationError):
        return describe_validation(error)
    if isinstance(error, tomllib.TOMLDecodeError):  # "Invalid value (at line 3, column 9)": no value
        return f"{config}: {error}" if config is not None else str(error)
    message = " ".join(str(error).split())
    if env := _ENV_ERROR.fullmatch(message):  # pydantic-settings: a CALLVAULT_* variable is not JSON
        variable = f"CALLVAULT_{env[1].upper()}"
        return f"{env[1]}: {variable} or {variable}__*: not a valid value (tables and lists: JSON)"
    return message


_ENV_ERROR = re.compile(r'error parsing value for field "(\w+)" from source "EnvSettingsSource"')


def describe_validation(error: ValidationError) -> str:
    """`setting: problem` per wrong setting, joined by '; ' (branches of a union: `problem or problem`)."""
    problems: dict[str, list[str]] = {}
    for item in error.errors(include_url=False, include_context=True, include_input=False):
        problems.setdefault(_setting(item), []).append(_problem(item))
    return "; ".join(
        f"{setting}: {' or '.join(dict.fromkeys(why))}" if setting else " or ".join(dict.fromkeys(why))
        for setting, why in problems.items()
    )


def _setting(item: ErrorDetails) -> str:
    # pydantic adds the type of a union's branch to the location ("list[str]", "literal['all']"): not a key
    parts = [str(p) for p in item["loc"] if isinstance(p, int) or not any(c in p for c in "[]()'")]
    return ".".join(parts)


def _problem(item: ErrorDetails) -> str:
    context: dict[str, Any] = dict(item.get("ctx") or {})
    kind = item["type"]
    if kind in ("too_short", "too_long") and context.get("field_type") == "Value":  # a SecretStr
        kind = f"string_{kind}"
    template = _MESSAGES.get(kind)
    if template is not None:
        try:
            return template.format(**context)
        except (KeyError, IndexError):
            pass
    message = item["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return " ".join(message.split())
