"""Alembic's environment: runs on the connection recorder/db/schema.py hands it (no alembic.ini, no URL
here: the catalog's own settings say where the database is)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
