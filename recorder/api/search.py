"""The SQL of a recording search (GET /v1/recordings), built from a SearchQuery: pure, no database.

Three statements, the same on SQLite and PostgreSQL but for the full-text match:
- the count, capped: `COUNT(*)` over at most `count_limit + 1` matches, so a broad filter (a third of a
  million recordings for one tag) costs the cap, not the catalog; above it the page's `total` is a lower
  bound (`total_exact: false`, the console shows "10,000+");
- the page, sorted on an indexed key ending in recording_id (recorder/db/migrations 0008), `limit + 1`
  rows so the page knows whether another follows without the count;
- for the sorts by duration and end time, where a live recording counts as finishing now (a key no index
  holds), the page is the merge of two index walks: the finished recordings by their stored column, and
  the live ones (few) by their start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from recorder.api.models import SearchQuery, SortField, SortOrder

MAX_TERMS = 16

# "Every word in one segment": FTS5 in SQLite, the generated tsvector `words` in PostgreSQL (the same quoted
# words: the 'simple' parser drops the quotes). recorder/db/postgres.py says why this is not translated.
MATCH = {
    "sqlite": "transcript_segments MATCH ?",
    "postgresql": "words @@ plainto_tsquery('simple', ?)",
}

RECORDING_WORDS = (
    "UPDATE recordings SET words = (SELECT strip(to_tsvector('simple', string_agg(text, ' ')))"
    " FROM transcript_segments WHERE recording_id = ?) WHERE recording_id = ?"
)
"""PostgreSQL: a recording's transcript as one tsvector (`recordings.words`, migration 0011), written again
whenever its segments are: every word said in the recording, so the recordings whose transcript holds every
word of `q` are found on the recordings' own rows (a GIN index), without reading the segments."""

ALL_RECORDING_WORDS = (
    "UPDATE recordings r SET words = t.words FROM (SELECT recording_id,"
    " strip(to_tsvector('simple', string_agg(text, ' '))) AS words FROM transcript_segments"
    " GROUP BY recording_id) t WHERE r.recording_id = t.recording_id"
)
"""PostgreSQL: RECORDING_WORDS for every transcribed recording at once (a catalog copied in)."""

ONE_WORD = re.compile(r'"[^\W_]+"')
"""A q= of one word that PostgreSQL's parser keeps as one lexeme (it splits at `_`): the recording's words
answer it alone."""

SQLITE_WALK_ABOVE = 2000
"""On SQLite, above this many matches a page sorted by start walks the started_at index (see `Filter`)."""


@dataclass
class Filter:
    """The WHERE clause of a search with its arguments. `{by_id}` marks the `recording_id IN (subquery)`
    terms: "" lets the planner look each match up by id; "+" (SQLite only) keeps it from using the id for
    them, so it walks the sort's index and stops after the page: when many match (a tag matching a third
    of the catalog need not sort them all)."""

    where: list[str] = field(default_factory=list)
    args: list[object] = field(default_factory=list)
    matched_words: str | None = None
    time_range: bool = False

    def clause(self, by_id: str = "") -> str:
        return f"WHERE {' AND '.join(self.where)}".replace("{by_id}", by_id) if self.where else ""


def build_filter(q: SearchQuery, dialect: str, now: float) -> Filter:
    f = Filter()
    where, args = f.where, f.args
    if q.room is not None:
        where.append("r.room_id = ?")
        args.append(q.room)
    if q.call_id is not None:
        where.append("r.call_id = ?")
        args.append(q.call_id)
    if q.status is not None:
        where.append("r.status = ?")
        args.append(q.status.value)
    else:
        where.append("r.status != 'deleted'")
    # Participant and tag filters as `IN (subquery)`: each subquery runs once on its index (a correlated
    # EXISTS probed the tags' (key, value) index once per recording: seconds at 10,000 recordings, see
    # bench/console_search.py).
    if q.participant is not None:
        where.append(
            "{by_id}r.recording_id IN (SELECT recording_id FROM participants WHERE participant_id = ?"
            " UNION SELECT recording_id FROM participants WHERE display_name = ?)"
        )
        args += [q.participant, q.participant]
    for tag in q.tag:
        key, sep, value = tag.partition(":")
        if sep:
            where.append(
                "{by_id}r.recording_id IN (SELECT recording_id FROM tags WHERE key = ? AND value = ?)"
            )
            args += [key, value]
        else:
            where.append("{by_id}r.recording_id IN (SELECT recording_id FROM tags WHERE key = ?)")
            args.append(key)
    f.matched_words = match_words(q.q) if q.q is not None else None
    if f.matched_words is not None:
        said(f, dialect)
    elif q.q is not None:
        where.append("1 = 0")  # no word in q: nothing was said that matches
    f.time_range = q.started_after is not None or q.started_before is not None
    if q.started_after is not None:
        where.append("r.started_at >= ?")
        args.append(q.started_after.timestamp())
    if q.started_before is not None:
        where.append("r.started_at < ?")
        args.append(q.started_before.timestamp())
    duration = "COALESCE(r.duration, ? - r.started_at)"
    if q.min_duration is not None:
        where.append(f"{duration} >= ?")
        args += [now, q.min_duration]
    if q.max_duration is not None:
        where.append(f"{duration} <= ?")
        args += [now, q.max_duration]
    return f


def said(f: Filter, dialect: str) -> None:
    """Recordings with a transcript segment holding every word of `f.matched_words`. On PostgreSQL the
    recording's own tsvector (`r.words`, GIN) finds the recordings where every word was said, on the rows
    the count and the page read anyway: the count stops at its cap, the page walks its sort's index. One
    word: that is the answer. Several: they must also be said in one segment (the API's promise), checked
    on the segments of those recordings only."""
    segment = (
        f"{{by_id}}r.recording_id IN (SELECT recording_id FROM transcript_segments WHERE {MATCH[dialect]})"
    )
    if dialect == "postgresql":
        f.where.append("r.words @@ plainto_tsquery('simple', ?)")
        f.args.append(f.matched_words)
        if f.matched_words is not None and ONE_WORD.fullmatch(f.matched_words):
            return
    f.where.append(segment)
    f.args.append(f.matched_words)


def count_sql(f: Filter, count_limit: int) -> tuple[str, list[object]]:
    """How many match, counting at most count_limit + 1 (0: no cap). With a time range, the first matches
    counted are taken along the started_at index: the rows are stored about in start order, so a scan of
    the table would read every older recording before the range (200 ms for the last week of a million)."""
    if count_limit <= 0:
        return f"SELECT COUNT(*) FROM recordings r {f.clause()}", list(f.args)
    along = " ORDER BY r.started_at DESC" if f.time_range else ""
    return (
        f"SELECT COUNT(*) FROM (SELECT 1 FROM recordings r {f.clause()}{along} LIMIT ?) matched",
        [*f.args, count_limit + 1],
    )


# Sort keys held by an index of migration 0008 (or recordings_started), each ending in recording_id.
_INDEXED: dict[SortField, str] = {
    SortField.STARTED_AT: "r.started_at",
    SortField.ROOM: "COALESCE(r.room_id, '')",
    SortField.PARTICIPANTS: "r.participant_count",
    SortField.BYTES: "r.bytes",
    SortField.STATUS: "r.status",
}

# Sorts where a live recording counts as finishing now: (the stored column, the live key's expression).
_LIVE_NOW: dict[SortField, tuple[str, str]] = {
    SortField.DURATION: ("duration", "? - r.started_at"),
    SortField.FINISHED_AT: ("finished_at", "CAST(? AS DOUBLE PRECISION)"),  # typed for PostgreSQL
}


def page_sql(q: SearchQuery, f: Filter, now: float, walk: bool) -> tuple[str, list[object]]:
    """The page's statement: `limit + 1` rows from `offset`, whole rows (`r.*`) when sorted by start,
    else `recording_id` alone (the page's rows are read by id after: sorting ids is cheaper than rows)."""
    direction = "ASC" if q.order is SortOrder.ASC else "DESC"
    rows = q.limit + 1
    if q.sort in _LIVE_NOW:
        column, live_key = _LIVE_NOW[q.sort]
        first = q.offset + rows  # each branch's first rows: the merged page is among them
        clause = f.clause()
        and_ = " AND " if clause else "WHERE "
        sql = (
            f"SELECT recording_id FROM ("
            f"SELECT * FROM (SELECT r.recording_id, r.{column} AS sort_key FROM recordings r"
            f" {clause}{and_}r.{column} IS NOT NULL"
            f" ORDER BY r.{column} {direction}, r.recording_id {direction} LIMIT ?) done"
            f" UNION ALL "
            f"SELECT * FROM (SELECT r.recording_id, {live_key} AS sort_key FROM recordings r"
            f" {clause}{and_}r.{column} IS NULL"
            f" ORDER BY sort_key {direction}, r.recording_id {direction} LIMIT ?) live"
            f") merged ORDER BY sort_key {direction}, recording_id {direction} LIMIT ? OFFSET ?"
        )
        # the live key's one `?` (now) comes before that branch's WHERE
        return sql, [*f.args, first, now, *f.args, first, rows, q.offset]
    key = _INDEXED[q.sort]
    columns = "r.*" if q.sort is SortField.STARTED_AT else "r.recording_id"
    return (
        f"SELECT {columns} FROM recordings r {f.clause('+' if walk else '')}"
        f" ORDER BY {key} {direction}, r.recording_id {direction} LIMIT ? OFFSET ?",
        [*f.args, rows, q.offset],
    )


def match_words(text: str) -> str | None:
    """A full-text query holding every word of `text` (each quoted: no FTS5 syntax from the caller), or
    None when it has no word."""
    words = re.findall(r"\w+", text)[:MAX_TERMS]
    return " ".join(f'"{w}"' for w in words) if words else None
