"""The manifest's JSON Schema, generated from the model; `manifest.schema.json` is the committed copy
(a test keeps it equal). Regenerate: `python -m recorder.manifest.schema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recorder.manifest.model import MANIFEST_FORMAT, Manifest

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
SCHEMA_ID = "https://callvault.dev/schemas/callvault.manifest-1.schema.json"


def manifest_json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["description"] = (
        f"CallVault recording manifest, format {MANIFEST_FORMAT}. Canonical bytes: JSON, sorted keys,"
        " no insignificant whitespace, UTF-8; signed with Ed25519 in manifest.json.sig (base64)."
    )
    return schema


def schema_text() -> str:
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_schema())
