"""The chart's catalog values: without them the pod keeps the SQLite catalog on its data volume (no
catalog variable); with `catalog.existingSecret` the PostgreSQL URL reaches `callvault serve` as
CALLVAULT_API__CATALOG_URL from that Secret, never in the ConfigMap."""

from __future__ import annotations

from typing import Any

from deploy_kit import one, render


def _env(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    (container,) = [
        c
        for c in one(docs, "StatefulSet")["spec"]["template"]["spec"]["containers"]
        if c["name"] == "callvault"
    ]
    return {e["name"]: e for e in container.get("env", [])}


def test_sqlite_by_default_postgres_from_an_existing_secret(helm_bin: str) -> None:
    assert "CALLVAULT_API__CATALOG_URL" not in _env(render(helm_bin))
    docs = render(helm_bin, sets=("catalog.existingSecret=callvault-pg", "catalog.existingSecretKey=dsn"))
    ref = _env(docs)["CALLVAULT_API__CATALOG_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "callvault-pg", "key": "dsn"}
    assert "postgresql" not in str(one(docs, "ConfigMap")["data"])
