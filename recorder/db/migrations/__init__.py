"""Alembic revisions of the catalog schema, for SQLite and PostgreSQL (recorder/db/schema.py runs them)."""
