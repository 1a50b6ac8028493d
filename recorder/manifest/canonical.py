"""Canonical JSON bytes: sorted keys, no insignificant whitespace, UTF-8 (RFC 8785-like; see model.py)."""

from __future__ import annotations

import json

from pydantic import BaseModel


def canonical_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def canonical_bytes(model: BaseModel) -> bytes:
    """The model's canonical bytes: what `manifest.json` holds and what is signed."""
    return canonical_json(model.model_dump(mode="json"))
