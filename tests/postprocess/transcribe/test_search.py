"""Search by what was said: the transcribed call indexed in a real catalog (SQLite FTS5, migration 7),
`GET /v1/recordings?q=` answered by Catalog.search with the hits at the right second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_kit import BACKENDS

from postprocess.transcribe.models import Transcript
from recorder.api.catalog import Catalog
from recorder.api.db import SCHEMA_VERSION, Database
from recorder.api.models import RecordingStatus, SearchQuery, TranscriptHit
from recorder.recording import RecordingInfo

pytestmark = BACKENDS  # SQLite's FTS5 and PostgreSQL's tsvector answer alike


@pytest.fixture
def catalog(
    tmp_path: Path, transcribed: Path, catalog_url: str | None
) -> Iterator[tuple[Catalog, Transcript]]:
    db = Database(catalog_url or tmp_path / "catalog.sqlite")
    catalog = Catalog(db)
    transcript = Transcript.model_validate_json((transcribed / "transcript.json").read_bytes())
    segments = [
        TranscriptHit(speaker=s.speaker, start=s.start, end=s.end, text=s.text) for s in transcript.segments
    ]

    def setup() -> None:
        for rid in ("r-said", "r-other"):
            info = RecordingInfo(
                recording_id=rid, folder=tmp_path / rid, started_at=1.8e9, finished_at=1.8e9 + 30
            )
            catalog.upsert_recording(info, RecordingStatus.FINISHED)
        catalog.index_transcript("r-said", segments)
        catalog.index_transcript(
            "r-other", [TranscriptHit(speaker="carol", start=1.0, end=2.0, text="I want to cancel")]
        )

    db.submit(setup).result()
    yield catalog, transcript
    db.submit(db.connection.close).result()


def _search(catalog: Catalog, **query: object) -> list[tuple[str, list[TranscriptHit]]]:
    page = catalog.db.submit(lambda: catalog.search(SearchQuery.model_validate(query))).result()
    return [(i.recording_id, i.transcript_hits) for i in page.items]


def test_a_word_said_finds_the_recording_and_the_second(catalog: tuple[Catalog, Transcript]) -> None:
    cat, transcript = catalog
    assert SCHEMA_VERSION >= 7
    found = _search(cat, q="Card NUMBER")  # case ignored, every word in one segment
    assert [rid for rid, _ in found] == ["r-said"]
    hits = found[0][1]
    said = next(s for s in transcript.segments if "card number" in s.text.lower())
    assert hits[0].speaker == "bob" and hits[0].start == said.start and hits[0].end == said.end
    assert [rid for rid, _ in _search(cat, q="cancel")] == ["r-other"]
    assert _search(cat, q="complaint") == []
    # no search syntax from the caller: quotes, operators and columns are words or nothing
    assert _search(cat, q='card" OR speaker:carol NEAR(') == []
    assert _search(cat, q="*") == []
    # other filters still apply, and without q there are no hits
    assert all(hits == [] for _, hits in _search(cat))


def test_deleting_a_recording_removes_its_transcript_from_the_index(
    catalog: tuple[Catalog, Transcript],
) -> None:
    cat, _ = catalog
    cat.db.submit(lambda: cat.mark_deleted("r-said", "admin")).result()
    assert _search(cat, q="card number") == []
    rows = cat.db.submit(
        lambda: cat.db.connection.execute(
            "SELECT COUNT(*) FROM transcript_segments WHERE recording_id = 'r-said'"
        ).fetchone()[0]
    ).result()
    assert rows == 0
