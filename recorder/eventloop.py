"""The event loop of the recorder's processes: uvloop where it is installed (Linux and macOS wheels, a
dependency of the package), asyncio's own loop otherwise. Every packet of every recorded stream passes
through this loop, and uvloop's selector and callback dispatch cost about half of asyncio's."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it can be imported."""
    try:
        import uvloop  # noqa: PLC0415 (optional at import time: asyncio's loop is the fallback)
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
