"""Webhook endpoints and delivery settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from recorder.webhooks.events import EventType
from recorder.webhooks.signing import secret_key


class WebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="Stable name of the endpoint."
    )
    url: str = Field(pattern=r"^https?://", description="Where events are POSTed.")
    secret: SecretStr = Field(description="Signing secret, 'whsec_' + base64 of at least 16 random bytes.")
    event_types: list[EventType] | None = Field(
        default=None, description="Only these event types (None: all)."
    )
    timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds to wait for the endpoint's answer."
    )

    @field_validator("secret")
    @classmethod
    def _secret_ok(cls, value: SecretStr) -> SecretStr:
        secret_key(value.get_secret_value())
        return value

    def wants(self, event_type: EventType) -> bool:
        return self.event_types is None or event_type in self.event_types


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[WebhookEndpoint] = Field(default_factory=list, description="Where to deliver events.")
    outbox_path: Path = Field(default=Path("webhooks.sqlite3"), description="SQLite outbox file.")
    max_retry_seconds: float = Field(
        default=24 * 3600,
        gt=0,
        le=14 * 24 * 3600,
        description="Give a delivery up this long after the event.",
    )
    retry_initial: float = Field(default=5.0, gt=0, le=3600, description="First retry delay in seconds.")
    retry_max: float = Field(default=3600.0, gt=0, le=24 * 3600, description="Cap of the retry delay.")
    concurrency: int = Field(default=8, ge=1, le=256, description="Deliveries in flight at once.")
    poll_interval: float = Field(default=1.0, gt=0, le=60, description="Seconds between idle checks.")
    presign_expiry_seconds: int = Field(
        default=24 * 3600, ge=60, le=7 * 24 * 3600, description="Lifetime of links in recording.finished."
    )

    @model_validator(mode="after")
    def _checks(self) -> WebhookSettings:
        if self.retry_max < self.retry_initial:
            raise ValueError("retry_max must be >= retry_initial")
        ids = [e.id for e in self.endpoints]
        if len(ids) != len(set(ids)):
            raise ValueError("endpoint ids must be unique")
        return self

    def endpoint(self, endpoint_id: str) -> WebhookEndpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)
