"""Settings of the control API (`api` section of the service configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Serve the control API under /v1 and /metrics.")
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key (env CALLVAULT_API__ADMIN_KEY). Use it to create the real"
        " keys, then drop it. At least 32 characters.",
        min_length=32,
    )
    admin_key_file: Path | None = Field(
        default=None, description="File holding the bootstrap admin key (Kubernetes/Docker secret)."
    )
    catalog_path: Path = Field(
        default=Path("catalog.sqlite3"),
        description="SQLite catalog (recordings, policy, keys, audit log); relative to data_dir.",
    )
    default_policy: Literal["all", "enabled"] | None = Field(
        default=None,
        description="Record every room ('all') or only rooms enabled through the API ('enabled'). None:"
        " from janus.record_rooms ('all', or a list: those rooms enabled).",
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        le=36500,
        description="Days after it finished during which a recording cannot be deleted through the API.",
    )
    link_expiry_seconds: int = Field(
        default=900, ge=1, le=7 * 86400, description="Lifetime of presigned download links."
    )
    status_requires_key: bool = Field(
        default=True,
        description="/v1/status (open recordings, event counters) needs an admin or operator key; off: open.",
    )
    metrics_require_key: bool = Field(
        default=True, description="/metrics needs an admin or operator key (Bearer); off: open."
    )

    def resolved_catalog(self, data_dir: Path) -> Path:
        return self.catalog_path if self.catalog_path.is_absolute() else data_dir / self.catalog_path

    def bootstrap_key(self) -> str | None:
        if self.admin_key is not None:
            return self.admin_key.get_secret_value()
        if self.admin_key_file is not None:
            key = self.admin_key_file.read_text().strip()
            if len(key) < 32:
                raise ValueError(f"api.admin_key_file {self.admin_key_file}: key shorter than 32 characters")
            return key
        return None
