"""Search by words said (`q=`) on both backends, as the count limit and a transcript written again see it: on
PostgreSQL the recordings are found by their own words (`recordings.words`, migration 0011) and, for several
words, checked on the segments (every word in one segment, as on SQLite's FTS5); the capped count holds; a
transcript indexed again replaces the recording's words, a deleted recording has none; each item's hits are
its first five matching segments in time order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_kit import BACKENDS

from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import RecordingStatus, SearchQuery, TranscriptHit
from recorder.recording import RecordingInfo

pytestmark = BACKENDS

LIMIT = 3


def _said(*lines: str) -> list[TranscriptHit]:
    """Segments 2 s apart, given in reverse time order (the hits must come back sorted)."""
    return [
        TranscriptHit(speaker="cust", start=2.0 * i, end=2.0 * i + 1.5, text=t)
        for i, t in reversed(list(enumerate(lines)))
    ]


@pytest.fixture
def catalog(tmp_path: Path, catalog_url: str | None) -> Iterator[Catalog]:
    db = Database(catalog_url or tmp_path / "catalog.sqlite")
    catalog = Catalog(db, count_limit=LIMIT)

    def setup() -> None:
        for i in range(8):
            info = RecordingInfo(
                recording_id=f"r-{i}", folder=tmp_path / str(i), started_at=1.8e9 + i, finished_at=1.8e9 + 60
            )
            catalog.upsert_recording(info, RecordingStatus.FINISHED)
        for i in range(6):  # r-0..r-5 asked for a refund; r-0 seven times
            catalog.index_transcript(f"r-{i}", _said(*["I want a refund"] * (7 if i == 0 else 1), "bye"))
        catalog.index_transcript("r-6", _said("my card", "the number is"))  # two words, two segments
        catalog.index_transcript("r-7", _said("card number please"))

    db.submit(setup).result()
    yield catalog
    db.close()


def _search(catalog: Catalog, **query: object) -> tuple[list[str], int, bool]:
    page = catalog.db.submit(lambda: catalog.search(SearchQuery.model_validate(query))).result()
    return [i.recording_id for i in page.items], page.total, page.total_exact


def test_words_said_with_the_count_limit(catalog: Catalog) -> None:
    assert _search(catalog, q="refund", limit=2) == (["r-5", "r-4"], LIMIT, False)  # 6 match: "3+"
    assert _search(catalog, q="REFUND", offset=4, limit=5) == (["r-1", "r-0"], 6, True)  # the last page
    # several words: every one in one segment (r-6 said both, in two segments)
    assert _search(catalog, q="card number") == (["r-7"], 1, True)
    assert _search(catalog, q="number") == (["r-7", "r-6"], 2, True)
    assert _search(catalog, q="refund", room="nowhere") == ([], 0, True)  # with another filter
    page = catalog.db.submit(lambda: catalog.search(SearchQuery(q="refund", offset=5))).result()
    [item] = page.items
    assert [h.start for h in item.transcript_hits] == [0.0, 2.0, 4.0, 6.0, 8.0]  # its first 5 of 7


def test_a_transcript_indexed_again_or_deleted_changes_what_is_found(catalog: Catalog) -> None:
    run = catalog.db.submit
    run(lambda: catalog.index_transcript("r-7", _said("cancel my contract"))).result()  # redacted, say
    assert _search(catalog, q="card number") == ([], 0, True)
    assert _search(catalog, q="contract") == (["r-7"], 1, True)
    run(lambda: catalog.mark_deleted("r-5", "admin")).result()
    assert _search(catalog, q="refund", status="deleted") == ([], 0, True)  # its words went with it
    assert _search(catalog, q="refund", limit=10) == (["r-4", "r-3", "r-2", "r-1", "r-0"], 5, True)
