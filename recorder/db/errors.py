"""The errors a catalog database raises, whichever the dialect (for commands that report them as one)."""

from __future__ import annotations

import sqlite3

from recorder.db.revision import SchemaTooNewError
from recorder.db.url import CatalogUrlError

try:
    import psycopg
except ImportError:  # the postgres extra is not installed: no PostgreSQL catalog can be opened
    _PG: tuple[type[Exception], ...] = ()
else:
    _PG = (psycopg.Error,)

CATALOG_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, SchemaTooNewError, CatalogUrlError, *_PG)
"""Opening or querying the catalog failed (SQLite, PostgreSQL, its schema or its URL)."""
