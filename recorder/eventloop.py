"""The event loop of the recorder's processes: uvloop where it is installed (Linux and macOS wheels, a
dependency of the package), asyncio's own loop otherwise. Every packet of every recorded stream passes
through this loop, and uvloop's selector and callback dispatch cost about half of asyncio's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from recorder import native

log = logging.getLogger(__name__)

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it can be imported. Logs which hot path runs (recorder/native.py):
    a warning when a compiled one exists but is stale."""
    stale = native.activate().reason.startswith("stale")
    log.log(logging.WARNING if stale else logging.INFO, "%s", native.describe())
    try:
        import uvloop  # noqa: PLC0415 (optional at import time: asyncio's loop is the fallback)
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
