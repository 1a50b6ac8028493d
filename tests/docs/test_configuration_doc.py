"""docs/configuration.md names every setting of `callvault serve` (ServiceSettings, recursively: janus.*,
recorder.*, api.*, archive.*, composite.*, log.*) in a table row that gives its default."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from recorder.service.settings import ServiceSettings

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _models(annotation: object) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (directly, optional, or as list items) and whether it is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            model, many = _models(arg)
            if model is not None:
                return model, many
    if origin is list and args:
        model, _ = _models(args[0])
        return model, model is not None
    return None, False


def setting_names(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        inner, many = _models(field.annotation)
        if inner is None:
            names.append(dotted)
            continue
        if many:
            names.append(dotted)
        names.extend(setting_names(inner, f"{dotted}[]." if many else f"{dotted}."))
    return names


def test_the_walk_reaches_every_section() -> None:
    names = setting_names(ServiceSettings)
    for section in ("janus.", "recorder.", "api.", "archive.storage.s3.worm.", "composite.", "log."):
        assert any(n.startswith(section) for n in names), section
    assert "archive.webhooks.endpoints[].secret" in names
    assert "http_port" in names


def test_every_setting_is_documented_with_its_default() -> None:
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `")]
    missing, no_default = [], []
    for name in setting_names(ServiceSettings):
        row = next((r for r in rows if f"`{name}`" in r.split(" | ")[0]), None)
        if row is None:
            missing.append(name)
        elif not re.split(r"(?<!\\)\|", row)[2].strip():
            no_default.append(name)
    assert not missing, f"settings not in docs/configuration.md: {missing}"
    assert not no_default, f"settings without a default in docs/configuration.md: {no_default}"
