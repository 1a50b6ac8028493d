"""Where the catalog lives: SQLite (the embedded default) or PostgreSQL (a fleet sharing one catalog).

`url` parses `api.catalog_url`; `postgres` adapts a psycopg connection to the subset of the sqlite3
interface the catalog's statements use; `migrations` holds the Alembic revisions of both dialects."""
