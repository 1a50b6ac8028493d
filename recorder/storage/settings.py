"""Storage, spool and key settings: every field has a default, bounds and a description.

Secrets (S3 credentials) come from the settings, from environment variables or from secret files
(Kubernetes/Docker secrets), in that order; see `S3Settings.resolved_credentials`.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from recorder.storage.keys import DEFAULT_KEY_TEMPLATE, check_key_template


class RetentionMode(StrEnum):
    """S3 object lock modes. COMPLIANCE cannot be shortened by anyone; GOVERNANCE can, with a permission."""

    COMPLIANCE = "COMPLIANCE"
    GOVERNANCE = "GOVERNANCE"


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class WormSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        title="Use object lock",
        description="Put retention on every object when the bucket has object lock enabled (detected).",
    )
    mode: RetentionMode = Field(default=RetentionMode.COMPLIANCE, description="Object lock retention mode.")
    days: int = Field(default=365, ge=1, le=36500, description="Retention period in days from upload.")


class LocalStoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("recordings-store"), description="Folder objects are stored under.")


class S3Settings(BaseModel):
    """An S3/MinIO bucket. Credentials: `access_key`/`secret_key`, else the environment variables named by
    `access_key_env`/`secret_key_env`, else the files `access_key_file`/`secret_key_file`."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(default="127.0.0.1:9000", description="host:port of the S3 endpoint, no scheme.")
    region: str = Field(default="us-east-1", min_length=1, description="Bucket region (used for signing).")
    bucket: str = Field(default="callvault", min_length=3, max_length=63, description="Bucket name.")
    secure: bool = Field(default=True, description="Use TLS (https).")
    ca_file: Path | None = Field(
        default=None, description="CA bundle for TLS (default: certifi/SSL_CERT_FILE)."
    )
    access_key: SecretStr | None = Field(default=None, description="Access key (prefer env or file).")
    secret_key: SecretStr | None = Field(default=None, description="Secret key (prefer env or file).")
    access_key_env: str = Field(default="CALLVAULT_S3_ACCESS_KEY", description="Env var with the access key.")
    secret_key_env: str = Field(default="CALLVAULT_S3_SECRET_KEY", description="Env var with the secret key.")
    access_key_file: Path | None = Field(default=None, description="File holding the access key.")
    secret_key_file: Path | None = Field(default=None, description="File holding the secret key.")
    connect_timeout: float = Field(default=5.0, gt=0, le=300, description="Seconds to wait for a connection.")
    read_timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds to wait for a response.")
    http_retries: int = Field(
        default=2, ge=0, le=10, description="Quick HTTP-level retries per call (the spool retries beyond)."
    )
    single_put_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024 * 1024 * 1024,
        description="Objects up to this size go up in one PUT (read into memory); larger ones in parts.",
    )
    part_size: int = Field(
        default=16 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        le=5 * 1024 * 1024 * 1024,
        description="Multipart part size for objects larger than single_put_max_bytes.",
    )
    worm: WormSettings = Field(default_factory=WormSettings, description="Object lock (WORM) retention.")

    def resolved_credentials(self) -> tuple[str, str]:
        """(access key, secret key) from settings, env or files; empty strings mean anonymous."""
        return (
            _secret(self.access_key, self.access_key_env, self.access_key_file),
            _secret(self.secret_key, self.secret_key_env, self.secret_key_file),
        )


def _secret(value: SecretStr | None, env: str, file: Path | None) -> str:
    if value is not None:
        return value.get_secret_value()
    if os.environ.get(env):
        return os.environ[env]
    if file is not None:
        return file.read_text().strip()
    return ""


class StorageSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: StorageBackend = Field(default=StorageBackend.LOCAL, description="Where objects are stored.")
    local: LocalStoreSettings = Field(default_factory=LocalStoreSettings, description="Local backend.")
    s3: S3Settings = Field(default_factory=S3Settings, description="S3/MinIO backend.")
    key_template: str = Field(
        default=DEFAULT_KEY_TEMPLATE,
        description="Object key template; fields: {date:<strftime>}, {recording_id}, {room_id}, {name}.",
    )
    presign_expiry_seconds: int = Field(
        default=24 * 3600, ge=60, le=7 * 24 * 3600, description="Lifetime of presigned download links."
    )

    @field_validator("key_template")
    @classmethod
    def _template_ok(cls, value: str) -> str:
        check_key_template(value)
        return value


class SpoolSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path = Field(default=Path("spool"), description="Spool folder: recordings and the job database.")
    max_bytes: int = Field(
        default=20 * 1024**3, ge=1024 * 1024, description="Hard limit of bytes under the spool folder."
    )
    high_water: float = Field(
        default=0.8,
        gt=0,
        lt=1,
        description="Fraction of max_bytes at which new recordings are refused, so running ones can finish.",
    )
    min_free_bytes: int = Field(
        default=512 * 1024 * 1024, ge=0, description="Refuse new recordings when the disk has less free."
    )
    delete_after_upload: bool = Field(default=True, description="Delete local files once uploaded.")
    retry_initial: float = Field(default=1.0, gt=0, le=600, description="First retry delay in seconds.")
    retry_max: float = Field(default=300.0, gt=0, le=3600, description="Cap of the retry delay in seconds.")
    concurrency: int = Field(
        default=4,
        ge=1,
        le=32,
        description="Uploads in flight at once (4: when calls end together, the client's and the store's"
        " work per upload overlap; BENCHMARKS.md, time to available).",
    )
    poll_interval: float = Field(
        default=1.0, gt=0, le=60, description="Seconds between checks for due jobs when idle."
    )

    @model_validator(mode="after")
    def _retry_bounds(self) -> SpoolSettings:
        if self.retry_max < self.retry_initial:
            raise ValueError("retry_max must be >= retry_initial")
        return self
