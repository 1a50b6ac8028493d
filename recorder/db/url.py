"""The catalog's location from `api.catalog_url`: a `postgresql://` URL, or a `sqlite:///` one (a path),
checked once when the configuration loads. Never logged with its password: `redacted()` is what a log
line or an error message may show."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

Dialect = Literal["sqlite", "postgresql"]

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


class CatalogUrlError(ValueError):
    """`api.catalog_url` is not one this CallVault can open."""


class CatalogLocation(BaseModel):
    """A parsed catalog URL: the dialect and, for SQLite, the file; for PostgreSQL the libpq URL."""

    model_config = ConfigDict(frozen=True)

    dialect: Dialect
    path: Path | None = None
    conninfo: str | None = None

    def redacted(self) -> str:
        if self.dialect == "sqlite":
            return str(self.path)
        return redact(self.conninfo or "")


def parse_catalog_url(url: str) -> CatalogLocation:
    """`postgresql://user:pass@host:port/db?sslmode=...` (also `postgres://`; a unix socket as
    `postgresql:///db?host=/run/postgresql`) or `sqlite:///absolute/path` / `sqlite:///relative/path`."""
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise CatalogUrlError(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        if not parts.path.strip("/") and "dbname=" not in parts.query:
            raise CatalogUrlError("a postgresql:// catalog URL must name its database (postgresql://host/db)")
        plain = "postgresql" + url.strip()[len(parts.scheme) :]  # libpq knows postgresql:// only
        return CatalogLocation(dialect="postgresql", conninfo=plain)
    if scheme == "sqlite":
        if parts.netloc or not parts.path or parts.path == "/":
            raise CatalogUrlError("a sqlite catalog URL is sqlite:///path/to/catalog.sqlite3")
        # sqlite:///relative and sqlite:////absolute, as SQLAlchemy spells them
        return CatalogLocation(dialect="sqlite", path=Path(parts.path[1:]))
    raise CatalogUrlError(
        f"unknown catalog URL scheme {parts.scheme or '(none)'!r}: use postgresql:// or sqlite:///"
    )


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by ***; query parameters (which may hold one) dropped."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    return f"{parts.scheme}://{netloc}{parts.path}"
