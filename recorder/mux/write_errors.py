"""How a failed write is told: a full disk says so by name, so a track's summary can explain its failure."""

from __future__ import annotations

import errno

from recorder.errors import MuxError

_NAMED = {errno.ENOSPC: "disk full (ENOSPC)", errno.EDQUOT: "disk quota exceeded (EDQUOT)"}


def describe(exc: BaseException) -> str:
    """`exc` as text, led by 'disk full (ENOSPC)' or 'disk quota exceeded (EDQUOT)' when it is one."""
    named = _NAMED.get(getattr(exc, "errno", None) or 0)
    return f"{named}: {exc}" if named else str(exc)


def write_error(what: str, exc: BaseException) -> MuxError:
    """A MuxError for a failed write: '<disk full (ENOSPC): >cannot write <what>: <exc>'."""
    named = _NAMED.get(getattr(exc, "errno", None) or 0)
    return MuxError(f"{named + ': ' if named else ''}cannot write {what}: {exc}")
