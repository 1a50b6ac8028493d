"""api.catalog_url: what it accepts, what it refuses with one clear error, and that its password never
shows (settings repr, validation errors, the redacted form logs use)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from recorder.api.settings import ApiSettings
from recorder.db.url import CatalogUrlError, parse_catalog_url, redact

SECRET = "s3cret-Pa55word"


def test_postgres_urls_keep_every_libpq_parameter() -> None:
    at = parse_catalog_url(f"postgres://cv:{SECRET}@db.internal:5433/vault?sslmode=verify-full")
    assert at.dialect == "postgresql"
    assert at.conninfo == f"postgresql://cv:{SECRET}@db.internal:5433/vault?sslmode=verify-full"
    socket = parse_catalog_url("postgresql:///vault?host=/run/postgresql&user=cv")
    assert socket.conninfo == "postgresql:///vault?host=/run/postgresql&user=cv"
    assert socket.redacted() == "postgresql:///vault"


def test_sqlite_urls_name_a_file_relative_or_absolute(tmp_path: Path) -> None:
    assert parse_catalog_url("sqlite:///catalog.sqlite3").path == Path("catalog.sqlite3")
    assert parse_catalog_url(f"sqlite:///{tmp_path}/c.db").path == tmp_path / "c.db"
    api = ApiSettings(catalog_url="sqlite:///sub/c.db")
    assert api.catalog_location(tmp_path).path == tmp_path / "sub" / "c.db"
    assert ApiSettings().catalog_location(tmp_path).path == tmp_path / "catalog.sqlite3"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://u:p@h/db", "unknown catalog URL scheme 'mysql'"),
        ("/var/lib/catalog.sqlite3", "unknown catalog URL scheme '(none)'"),
        ("postgresql://u@h:5432/", "must name its database"),
        ("sqlite://host/x.db", "sqlite:///path"),
    ],
)
def test_a_bad_url_is_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(CatalogUrlError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_catalog_url(url)


def test_the_password_never_shows() -> None:
    url = f"postgresql://callvault:{SECRET}@db:5432/vault?password={SECRET}"
    assert SECRET not in redact(url) and redact(url) == "postgresql://callvault:***@db:5432/vault"
    api = ApiSettings(catalog_url=url)
    assert SECRET not in repr(api) and SECRET not in str(api.model_dump())
    assert api.catalog_location(Path("/data")).conninfo == url
    with pytest.raises(ValidationError) as refused:
        ApiSettings(catalog_url=f"mysql://callvault:{SECRET}@db/vault")
    assert SECRET not in str(refused.value) and "unknown catalog URL scheme" in str(refused.value)
