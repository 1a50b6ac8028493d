"""Commands that write the catalog find it where the service does: `callvault import-mjr --data-dir` with
CALLVAULT_API__CATALOG_URL lists the imported recording in the PostgreSQL catalog, not in a stray SQLite
file; a catalog it cannot reach is one clear error naming it without its password."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from postgres_kit import PostgresServer

from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.cli import main

MJR = sorted((Path(__file__).parents[1] / "recorder" / "mjr" / "data").glob("*.mjr"))


def test_import_mjr_lists_into_the_postgres_catalog(
    postgres_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_database()
    monkeypatch.setenv("CALLVAULT_API__CATALOG_URL", url)
    data_dir = tmp_path / "data"
    assert main(["import-mjr", "--data-dir", str(data_dir), *map(str, MJR)]) == 0
    (folder,) = (data_dir / "recordings").iterdir()
    assert not (data_dir / "catalog.sqlite3").exists()
    db = Database(url)
    try:
        detail = db.submit(lambda: Catalog(db).get(folder.name)).result()
    finally:
        db.close()
    assert detail is not None and detail.status.value == "finished" and detail.tracks > 0


def test_an_unreachable_catalog_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = tmp_path / "no-server"
    sock.mkdir()
    monkeypatch.setenv("CALLVAULT_API__CATALOG_URL", f"postgresql://cv:hunter22secret@/vault?host={sock}")
    assert main(["import-mjr", "--data-dir", str(tmp_path / "data"), str(MJR[0])]) != 0
    err = capsys.readouterr().err
    assert "cannot open the catalog postgresql://cv:***@/vault" in err and "hunter22secret" not in err


def test_serve_says_in_one_line_that_the_catalog_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sock = tmp_path / "no-server"
    sock.mkdir()
    with socket.socket() as s:  # a port free a moment ago (serve stops before listening anyway)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {
        "DATA_DIR": str(tmp_path / "data"),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "JANUS__ENABLED": "false",
        "API__ADMIN_KEY": "an-admin-key-of-at-least-32-characters",
        "API__CATALOG_URL": f"postgresql://cv:hunter22secret@/vault?host={sock}",
    }.items():
        monkeypatch.setenv(f"CALLVAULT_{name}", value)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "callvault: error: catalog: cannot connect to the catalog postgresql://cv:***@/vault" in err
    assert "hunter22secret" not in err and "Traceback" not in err
