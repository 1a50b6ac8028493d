"""Times in the API's answers: RFC 3339 date-times in UTC, one format everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


def _from_unix(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return value


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a date-time needs its offset")
    return value.astimezone(UTC)


Timestamp = Annotated[datetime, BeforeValidator(_from_unix), AfterValidator(_in_utc)]
"""A time in an answer: built from the catalog's Unix seconds (or a datetime), always written as an RFC 3339
date-time in UTC (`2024-05-01T12:00:00.250000Z`, `format: date-time`), like the search filters, the
manifests and the webhooks."""


def utc(seconds: float) -> datetime:
    """The UTC date-time of Unix `seconds`."""
    return datetime.fromtimestamp(seconds, UTC)
