"""Names that become path components or object keys: one strict allow-list, checked at every door.

Room ids, participant (publisher) ids and stream mids come from the network (Janus events and answers,
SDPs, API paths and bodies, state files) and end up in folder and file names. Each is accepted only if it
matches its pattern in full (``fullmatch``: a trailing newline is refused too); a file inside a folder is
made only through `child`, which also checks that the result stays inside after resolution.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from recorder.errors import CallVaultError

SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Room, participant and recording ids: 1-128 letters, digits, '.', '_' or '-', not starting with '.'."""
SAFE_MID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
"""A stream's mid (RFC 8843 allows any token; browsers use '0', '1', 'audio', 'sdparta_0')."""
SAFE_ID_PATTERN = SAFE_ID.pattern


class UnsafeNameError(CallVaultError, ValueError):
    """A name from outside that cannot become a path component; the message says which and why."""


def check_id(value: str, what: str = "id") -> str:
    """`value` if it is a safe id, else `UnsafeNameError`."""
    if not isinstance(value, str) or SAFE_ID.fullmatch(value) is None:
        raise UnsafeNameError(f"{what} {_shown(value)} must be 1-128 letters, digits, '.', '_' or '-'")
    return value


def check_mid(value: str) -> str:
    """`value` if it is a safe stream mid, else `UnsafeNameError`."""
    if not isinstance(value, str) or SAFE_MID.fullmatch(value) is None:
        raise UnsafeNameError(f"stream mid {_shown(value)} must be 1-32 letters, digits, '_' or '-'")
    return value


def check_janus_id(value: int | str, what: str) -> int | str:
    """A Janus room or participant id: a non-negative integer (Janus's default) or a safe string id
    (``string_ids``). Booleans are refused."""
    if isinstance(value, bool):
        raise UnsafeNameError(f"{what} must be an integer or a string, not a boolean")
    if isinstance(value, int):
        if not 0 <= value < 2**64:
            raise UnsafeNameError(f"{what} {value} is out of range (0 to 2^64-1)")
        return value
    return check_id(value, what)


SafeId = Annotated[str, AfterValidator(check_id)]
"""A pydantic type for ids read from files and bodies (state, manifests): refused unless safe."""
SafeMid = Annotated[str, AfterValidator(check_mid)]


def child(folder: Path, name: str) -> Path:
    """`folder / name` for a single path component `name`, refused unless it stays inside `folder`."""
    if not name or name in {".", ".."} or any(c in name for c in "/\\\0"):
        raise UnsafeNameError(f"file name {_shown(name)} is not a single path component")
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise UnsafeNameError(f"file name {_shown(name)} leaves its folder")
    return path


def _shown(value: object) -> str:
    """A bounded, escaped rendering of untrusted text for messages and logs."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
