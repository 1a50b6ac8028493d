"""The PostgreSQL spelling of the catalog's SQLite statements (recorder/db/postgres.py): each translated
spot, and a statement it cannot translate refused rather than guessed."""

from __future__ import annotations

import pytest

from recorder.db.postgres import SqlTranslationError, translate


def test_placeholders_and_percent_signs_outside_quotes_only() -> None:
    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x%?' AND c = ?") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%?' AND c = %s"
    )
    assert translate('SELECT "end" FROM t WHERE x % 2 = ?') == 'SELECT "end" FROM t WHERE x %% 2 = %s'


def test_insert_or_replace_is_an_upsert_on_the_primary_key() -> None:
    assert translate(
        "INSERT OR REPLACE INTO tags (recording_id, participant_id, key, value) VALUES (?, ?, ?, ?)"
    ) == (
        "INSERT INTO tags (recording_id, participant_id, key, value) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (recording_id, participant_id, key) DO UPDATE SET value = EXCLUDED.value"
    )
    assert translate("INSERT OR REPLACE INTO policy (name, value) VALUES ('default', ?)").endswith(
        "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value"
    )
    with pytest.raises(SqlTranslationError, match="no primary key known"):
        translate("INSERT OR REPLACE INTO mystery (a) VALUES (?)")


def test_insert_or_ignore_and_is_parameter() -> None:
    assert translate("insert or ignore into deleted_objects (recording_id, name) values (?, ?)") == (
        "INSERT INTO deleted_objects (recording_id, name) values (%s, %s) ON CONFLICT DO NOTHING"
    )
    assert translate("UPDATE pauses SET end_time = ? WHERE participant_id IS ? AND x IS NOT ?") == (
        "UPDATE pauses SET end_time = %s WHERE participant_id IS NOT DISTINCT FROM %s"
        " AND x IS DISTINCT FROM %s"
    )
    assert translate("SELECT 1 WHERE a IS NULL") == "SELECT 1 WHERE a IS NULL"
