"""Settings of the control API (`api` section of the service configuration), and the limits of the HTTP
server `callvault serve` answers on (request sizes, read timeouts, connections)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from recorder.db.url import CatalogLocation, CatalogUrlError, parse_catalog_url

MIN_KEY_LENGTH = 32


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Serve the control API under /v1 and /metrics.")
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin API key (env CALLVAULT_API__ADMIN_KEY). Use it to create the real"
        f" keys, then drop it. At least {MIN_KEY_LENGTH} characters.",
    )
    admin_key_file: Path | None = Field(
        default=None,
        description="File holding the bootstrap admin key (Kubernetes/Docker secret); read and checked when"
        f" the configuration is loaded (at least {MIN_KEY_LENGTH} characters).",
    )
    catalog_path: Path = Field(
        default=Path("catalog.sqlite3"),
        description="SQLite catalog (recordings, policy, keys, audit log); relative to data_dir. Unused when"
        " catalog_url is set.",
    )
    catalog_url: SecretStr | None = Field(
        default=None,
        description="Where the catalog lives when it is not the SQLite file catalog_path: a PostgreSQL URL"
        " (postgresql://user:password@host:5432/callvault?sslmode=verify-full; env"
        " CALLVAULT_API__CATALOG_URL), shared by every node of a fleet, or sqlite:///path. Never logged with"
        " its password.",
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
    search_count_limit: int = Field(
        default=10_000,
        ge=0,
        le=100_000_000,
        description="A search counts its matches exactly up to this many; above, its total is a lower bound"
        " (total_exact false; the console shows 10,000+), so broad searches of a large catalog stay fast."
        " 0: always count exactly.",
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
    console: bool = Field(
        default=True,
        description="Serve the supervisor console (a browser UI over this API) at /console/ (needs the"
        " API on).",
    )
    console_session_minutes: int = Field(
        default=480,
        ge=1,
        le=7 * 24 * 60,
        description="Lifetime of a console sign-in (its session cookie), from signing in; then sign in"
        " again.",
    )
    console_trusted_proxies: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Addresses or networks (CIDR) of reverse proxies in front of the service that end TLS:"
        " from them (the connection's peer address), X-Forwarded-Proto: https marks the console's cookie"
        " Secure. Empty: the header is ignored (anyone could send it); Secure only when the service"
        " itself serves TLS.",
    )

    @field_validator("console_trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return value

    # -- limits of the HTTP server (the API, /healthz, /readyz and the Janus event endpoints) -------------
    max_request_line: int = Field(
        default=8190,
        ge=256,
        le=65536,
        description="Longest request line (method, path and query) in bytes; longer: 400 problem.",
    )
    max_header_size: int = Field(
        default=8190,
        ge=256,
        le=65536,
        description="Longest header (name and value) in bytes; longer: 400 problem.",
    )
    max_headers: int = Field(
        default=128, ge=8, le=1024, description="Most headers in one request; more: 400 problem."
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's line and headers, counted from connecting or"
        " from the previous response (so also how long an idle keep-alive connection stays open); then the"
        " connection is closed.",
    )
    body_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds an API request's body has to arrive once its headers did; then 408 and the"
        " connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Open HTTP connections served at once; a connection beyond them is answered 503 (a"
        " problem, Retry-After) and closed.",
    )

    @model_validator(mode="before")
    @classmethod
    def _mask_admin_key(cls, data: Any) -> Any:
        # Wrapped before validation, in the input itself: a validation error anywhere in the configuration
        # prints its input, and must never print the key.
        if isinstance(data, dict):
            for secret in ("admin_key", "catalog_url"):
                if isinstance(data.get(secret), str):
                    data[secret] = SecretStr(data[secret])
        return data

    @field_validator("catalog_url")
    @classmethod
    def _known_catalog(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            try:
                parse_catalog_url(url.get_secret_value())
            except CatalogUrlError as exc:
                raise ValueError(str(exc)) from None
        return url

    @field_validator("admin_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and len(key.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_KEY_LENGTH} characters")
        return key

    @field_validator("admin_key_file")
    @classmethod
    def _readable_key(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_key_file(path)
        return path

    def resolved_catalog(self, data_dir: Path) -> Path:
        return self.catalog_path if self.catalog_path.is_absolute() else data_dir / self.catalog_path

    def catalog_location(self, data_dir: Path) -> CatalogLocation:
        """catalog_url if set (a relative sqlite:/// path is taken from data_dir), else catalog_path."""
        if self.catalog_url is None:
            return CatalogLocation(dialect="sqlite", path=self.resolved_catalog(data_dir))
        location = parse_catalog_url(self.catalog_url.get_secret_value())
        if location.path is not None and not location.path.is_absolute():
            return CatalogLocation(dialect="sqlite", path=data_dir / location.path)
        return location

    def bootstrap_key(self) -> str | None:
        if self.admin_key is not None:
            return self.admin_key.get_secret_value()
        if self.admin_key_file is not None:
            return read_key_file(self.admin_key_file)
        return None


def read_key_file(path: Path) -> str:
    """The key in `path`, stripped; ValueError (naming the file, never its content) if it cannot be read or
    is shorter than MIN_KEY_LENGTH."""
    try:
        key = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"{path}: the key must be at least {MIN_KEY_LENGTH} characters")
    return key
