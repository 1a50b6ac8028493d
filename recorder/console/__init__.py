"""The supervisor console: search, play, check and hand over recordings, and watch live rooms, in a
browser, served by `callvault serve` at /console/ (see docs/console.md)."""

from recorder.console.app import Console

__all__ = ["Console"]
