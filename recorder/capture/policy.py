"""Whether a recording captures packets: the room policy's `capture` (recorded as the recording's
`capture` tag, "on" or "off") wins over the service's `recorder.capture`."""

from __future__ import annotations

from collections.abc import Mapping

CAPTURE_TAG = "capture"


def capture_tag(capture: bool) -> str:
    return "on" if capture else "off"


def capture_wanted(tags: Mapping[str, str], default: bool) -> bool:
    return {"on": True, "off": False}.get(tags.get(CAPTURE_TAG, ""), default)
