"""`callvault catalog-copy --to URL [--from SOURCE] [--config FILE]`: copy a catalog into an empty one.

Moving from the embedded SQLite catalog to a PostgreSQL catalog a fleet shares: stop `callvault serve`,
copy, set `api.catalog_url`, start again. SOURCE is a catalog file or URL (default: the catalog serve uses
with --config, or `<data_dir>/catalog.sqlite3`); the target must be empty (a new database). Every table is
copied as it is, in one transaction (all or nothing); the audit log verbatim, then verified on the target
(same chain, same head). Both catalogs are first brought to this CallVault's schema (as serve would).

Output: one line per table (`recordings: 1234 rows`), then `copied to URL (audit head HASH)`; exit 0. Exit
2 with one line when a catalog cannot be opened, the target is not empty, or the copy is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from recorder.api.db import Database
from recorder.config_errors import describe
from recorder.db.copy import CopyError, copy_catalog
from recorder.db.errors import CATALOG_ERRORS
from recorder.db.url import CatalogLocation, parse_catalog_url
from recorder.service.settings import load_settings

OPEN_ERRORS: tuple[type[Exception], ...] = (*CATALOG_ERRORS, OSError)
COPY_ERRORS: tuple[type[Exception], ...] = (CopyError, *CATALOG_ERRORS)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "catalog-copy",
        help="copy a catalog (SQLite) into a new, empty one (PostgreSQL), audit chain and all",
        description="Copy every row of a catalog into an empty catalog, in one transaction: the embedded"
        " SQLite catalog into the PostgreSQL database a fleet will share (api.catalog_url). Stop serve"
        " first. The audit log is copied verbatim and verified on the target.",
    )
    p.add_argument("--to", required=True, metavar="URL", help="the target: postgresql://... (or sqlite:///)")
    p.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        help="the source catalog: a file or URL (default: serve's, from --config or CALLVAULT_DATA_DIR)",
    )
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file (as for serve)")
    p.set_defaults(func=run)


def _location(text: str) -> CatalogLocation:
    if "://" in text:
        return parse_catalog_url(text)
    return CatalogLocation(dialect="sqlite", path=Path(text))


def run(args: argparse.Namespace) -> int:
    def fail(why: str) -> int:
        print(f"callvault catalog-copy: error: {why}", file=sys.stderr)
        return 2

    try:
        target = _location(args.to)
        if args.source is not None:
            source = _location(args.source)
        elif args.config is not None:
            settings = load_settings(args.config)
            source = settings.api.catalog_location(settings.data_dir)
        else:
            data_dir = Path(os.environ.get("CALLVAULT_DATA_DIR") or "callvault-data")
            source = CatalogLocation(dialect="sqlite", path=data_dir / "catalog.sqlite3")
    except (ValidationError, OSError, ValueError) as exc:
        return fail(f"invalid configuration: {describe(exc, args.config)}")
    if source.path is not None and not source.path.is_file():
        return fail(f"no catalog at {source.path}")
    if source == target:
        return fail("the source and the target are the same catalog")
    opened: list[Database] = []
    try:
        for where in (source, target):
            try:
                opened.append(Database(where))
            except OPEN_ERRORS as exc:
                return fail(f"cannot open the catalog {where.redacted()}: {str(exc).strip().splitlines()[0]}")
        try:
            report = copy_catalog(opened[0], opened[1], progress=lambda table, n: print(f"{table}: {n} rows"))
        except COPY_ERRORS as exc:
            return fail(f"{str(exc).strip().splitlines()[0]} (nothing was written to the target)")
    finally:
        for db in opened:
            db.close()
    print(f"copied to {target.redacted()} (audit head {report.audit_head or 'none: empty log'})")
    return 0
