"""Small JSON files that must survive crashes and power loss, one typed model per file
(`<folder>/<name>.json`): the archive's finish and composite tickets, the compositor's jobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def model_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.json"


def write_model(folder: Path, name: str, model: BaseModel) -> Path:
    """Write the model durably (temporary file, fsync, rename, fsync of the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = model_path(folder, name)
    tmp = folder / f".{name}.json.tmp"
    with tmp.open("wb") as f:
        f.write(model.model_dump_json().encode())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_models(folder: Path, model: type[Model]) -> tuple[list[Model], list[tuple[Path, str]]]:
    """Every model in the folder, and (path, why) for files that are not readable as one."""
    found: list[Model] = []
    bad: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return [], []
    for path in sorted(folder.glob("*.json")):
        try:
            found.append(model.model_validate_json(path.read_bytes()))
        except (OSError, ValidationError) as exc:
            bad.append((path, str(exc).splitlines()[0]))
    return found, bad


def remove_model(folder: Path, name: str) -> None:
    model_path(folder, name).unlink(missing_ok=True)
