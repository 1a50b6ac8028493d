"""The catalog: every recording the manager makes, indexed in SQLite for search.

`CatalogSink` is a RecordingSink: it hears every recording's start, segments, tracks, pauses and finish
and queues the writes on the database's worker thread (never blocking the loop, keeping their order).
`Catalog` answers the API's queries and updates (metadata, legal hold, deletion tombstones).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from recorder.api import search
from recorder.api.db import Database
from recorder.api.models import (
    ParticipantOut,
    PauseOut,
    RecordingDetail,
    RecordingOut,
    RecordingPage,
    RecordingStatus,
    SearchQuery,
    SortField,
    TrackOut,
    TranscriptHit,
)
from recorder.fleet.models import failure_of
from recorder.models import PauseInterval, SegmentInfo, TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo

log = logging.getLogger(__name__)

COUNT_LIMIT = 10_000
"""api.search_count_limit's default."""


class Catalog:
    def __init__(self, db: Database, retention_days: float = 0.0, count_limit: int = COUNT_LIMIT) -> None:
        self.db = db
        self.count_limit = count_limit
        """A search counts at most this many matches exactly (api.search_count_limit; 0: no limit)."""
        self.retention_seconds = retention_days * 86400
        self.hold_listeners: list[Callable[[str, bool], None]] = []
        """Called (on the worker thread) after a legal hold is placed or lifted (recorder/lifecycle)."""

    @property
    def _c(self) -> sqlite3.Connection:
        return self.db.connection

    # -- writes (worker thread) -----------------------------------------------------------------------

    def upsert_recording(self, info: RecordingInfo, status: RecordingStatus) -> None:
        now = time.time()
        duration = info.finished_at - info.started_at if info.finished_at is not None else None
        retention = (
            info.finished_at + self.retention_seconds
            if info.finished_at is not None and self.retention_seconds
            else None
        )
        self._c.execute(
            "INSERT INTO recordings (recording_id, room_id, call_id, folder, status, started_at,"
            " finished_at, duration, retention_until, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (recording_id) DO UPDATE SET room_id = excluded.room_id,"
            " call_id = excluded.call_id, folder = excluded.folder, status = excluded.status,"
            " finished_at = excluded.finished_at, duration = excluded.duration,"
            " retention_until = excluded.retention_until, updated_at = excluded.updated_at",
            (
                info.recording_id,
                info.room_id,
                info.call_id,
                str(info.folder),
                status.value,
                info.started_at,
                info.finished_at,
                duration,
                retention,
                now,
            ),
        )
        self.replace_tags(info.recording_id, "", info.metadata)
        for participant in info.participants:
            self.upsert_participant(info.recording_id, participant)

    def upsert_participant(self, recording_id: str, p: ParticipantInfo) -> None:
        self._c.execute(
            "INSERT INTO participants (recording_id, participant_id, display_name, joined_at, left_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (recording_id, participant_id) DO UPDATE SET"
            " display_name = excluded.display_name, joined_at = excluded.joined_at,"
            " left_at = excluded.left_at",
            (recording_id, p.id, p.display_name, p.joined_at, p.left_at),
        )
        # the count the participants sort reads (migration 0008); written only when it changed (the live
        # recordings' participants are upserted again before every search)
        self._c.execute(
            "UPDATE recordings SET participant_count = (SELECT COUNT(*) FROM participants"
            " WHERE recording_id = ?) WHERE recording_id = ? AND participant_count !="
            " (SELECT COUNT(*) FROM participants WHERE recording_id = ?)",
            (recording_id, recording_id, recording_id),
        )
        self.replace_tags(recording_id, p.id, p.metadata)

    def replace_tags(self, recording_id: str, participant: str, tags: dict[str, str]) -> None:
        self._c.execute(
            "DELETE FROM tags WHERE recording_id = ? AND participant_id = ?", (recording_id, participant)
        )
        self._c.executemany(
            "INSERT INTO tags (recording_id, participant_id, key, value) VALUES (?, ?, ?, ?)",
            [(recording_id, participant, k, v) for k, v in tags.items()],
        )

    def add_bytes(self, recording_id: str, size: int) -> None:
        self._c.execute(
            "UPDATE recordings SET bytes = bytes + ? WHERE recording_id = ?", (size, recording_id)
        )

    def add_track(self, recording_id: str, participant: str | None, s: TrackSummary) -> None:
        self._c.execute(
            "INSERT OR REPLACE INTO tracks (recording_id, name, participant_id, kind, codec, state, file,"
            " frames, packets_lost, packets_paused, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                recording_id,
                s.name,
                participant,
                s.kind.value,
                s.codec.value,
                s.state,
                s.file,
                s.frames,
                s.packets_lost,
                s.packets_paused,
                sum(seg.size for seg in s.segments),
            ),
        )
        self._c.execute(
            "UPDATE recordings SET tracks = (SELECT COUNT(*) FROM tracks WHERE recording_id = ?)"
            " WHERE recording_id = ?",
            (recording_id, recording_id),
        )

    def add_pause(self, recording_id: str, participant: str | None, pause: PauseInterval) -> None:
        self._c.execute(
            "INSERT INTO pauses (recording_id, participant_id, start_time, end_time, paused_by, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (recording_id, participant, pause.start_time, pause.end_time, pause.by, pause.reason),
        )
        if participant is None:
            self.set_status(recording_id, RecordingStatus.PAUSED)

    def end_pause(self, recording_id: str, participant: str | None, pause: PauseInterval) -> None:
        self._c.execute(
            "UPDATE pauses SET end_time = ? WHERE recording_id = ? AND participant_id IS ?"
            " AND start_time = ?",
            (pause.end_time, recording_id, participant, pause.start_time),
        )
        if participant is None:
            self._c.execute(
                "UPDATE recordings SET status = ? WHERE recording_id = ? AND status = ?",
                (RecordingStatus.RECORDING.value, recording_id, RecordingStatus.PAUSED.value),
            )

    def close_pauses(self, recording_id: str, at: float) -> None:
        """Participants' pauses still open when the recording finished end with it."""
        self._c.execute(
            "UPDATE pauses SET end_time = ? WHERE recording_id = ? AND end_time IS NULL", (at, recording_id)
        )

    def set_status(self, recording_id: str, status: RecordingStatus) -> None:
        self._c.execute(
            "UPDATE recordings SET status = ?, updated_at = ? WHERE recording_id = ?",
            (status.value, time.time(), recording_id),
        )

    def patch_tags(self, recording_id: str, participant: str, patch: dict[str, str | None]) -> None:
        for key, value in patch.items():
            if value is None:
                self._c.execute(
                    "DELETE FROM tags WHERE recording_id = ? AND participant_id = ? AND key = ?",
                    (recording_id, participant, key),
                )
            else:
                self._c.execute(
                    "INSERT OR REPLACE INTO tags (recording_id, participant_id, key, value)"
                    " VALUES (?, ?, ?, ?)",
                    (recording_id, participant, key, value),
                )

    def set_call_id(self, recording_id: str, call_id: str) -> None:
        self._c.execute("UPDATE recordings SET call_id = ? WHERE recording_id = ?", (call_id, recording_id))

    def set_legal_hold(self, recording_id: str, hold: bool, reason: str | None) -> None:
        self._c.execute(
            "UPDATE recordings SET legal_hold = ?, legal_hold_reason = ? WHERE recording_id = ?",
            (int(hold), reason if hold else None, recording_id),
        )
        for listener in self.hold_listeners:
            listener(recording_id, hold)

    def mark_deleted(self, recording_id: str, by: str) -> float:
        now = time.time()
        self._c.execute(
            "UPDATE recordings SET status = ?, deleted_at = ?, deleted_by = ?, updated_at = ?"
            " WHERE recording_id = ?",
            (RecordingStatus.DELETED.value, now, by, now, recording_id),
        )
        self._c.execute("DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,))
        if self.db.dialect == "postgresql":
            self._c.execute(search.RECORDING_WORDS, (recording_id, recording_id))
        return now

    def index_transcript(self, recording_id: str, segments: list[TranscriptHit]) -> None:
        """Replace the recording's transcript in the full-text index (one row per segment)."""
        self._c.execute("DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,))
        self._c.executemany(
            'INSERT INTO transcript_segments (text, recording_id, speaker, start, "end")'
            " VALUES (?, ?, ?, ?, ?)",
            [(s.text, recording_id, s.speaker, s.start, s.end) for s in segments],
        )
        if self.db.dialect == "postgresql":  # the recording's own words, which q= searches first
            self._c.execute(search.RECORDING_WORDS, (recording_id, recording_id))

    # -- reads (worker thread) ------------------------------------------------------------------------

    def folder(self, recording_id: str) -> Path | None:
        row = self._c.execute(
            "SELECT folder FROM recordings WHERE recording_id = ?", (recording_id,)
        ).fetchone()
        return None if row is None else Path(row["folder"])

    def get(self, recording_id: str) -> RecordingDetail | None:
        row = self._c.execute("SELECT * FROM recordings WHERE recording_id = ?", (recording_id,)).fetchone()
        if row is None:
            return None
        (out,) = self._hydrate([row])
        pauses = [
            PauseOut(
                participant=p["participant_id"],
                start_time=p["start_time"],
                end_time=p["end_time"],
                by=p["paused_by"],
                reason=p["reason"],
            )
            for p in self._c.execute(
                "SELECT * FROM pauses WHERE recording_id = ? ORDER BY start_time, id", (recording_id,)
            )
        ]
        tracks = [
            TrackOut(
                name=t["name"],
                participant=t["participant_id"],
                kind=t["kind"],
                codec=t["codec"],
                state=t["state"],
                file=t["file"],
                frames=t["frames"],
                packets_lost=t["packets_lost"],
                packets_paused=t["packets_paused"],
                bytes=t["bytes"],
            )
            for t in self._c.execute(
                "SELECT * FROM tracks WHERE recording_id = ? ORDER BY name", (recording_id,)
            )
        ]
        return RecordingDetail(
            **out.model_dump(),
            recorder=row["recorder"],
            failure=failure_of(row["failure"]),  # recorder/fleet: its recorder went silent mid-call
            pauses=pauses,
            track_list=tracks,
        )

    def search(self, q: SearchQuery) -> RecordingPage:
        """One page of the recordings matching `q` (the SQL: recorder/api/search.py). `total` is exact up to
        `count_limit` matches; above, a lower bound with `total_exact` false."""
        now = time.time()
        f = search.build_filter(q, self.db.dialect, now)
        sql, args = search.count_sql(f, self.count_limit)
        counted = int(self._c.execute(sql, args).fetchone()[0])
        exact = self.count_limit <= 0 or counted <= self.count_limit
        # (SQLite's planner hint, see search.Filter; PostgreSQL's planner weighs the two plans itself)
        walk = (
            (not exact or counted > search.SQLITE_WALK_ABOVE)
            and q.sort is SortField.STARTED_AT
            and self.db.dialect == "sqlite"
        )
        sql, args = search.page_sql(q, f, now, walk)
        rows = self._c.execute(sql, args).fetchall()
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        if rows and q.sort is not SortField.STARTED_AT:
            page_ids = [r[0] for r in rows]
            by_id = {
                r["recording_id"]: r
                for r in self._c.execute(
                    f"SELECT * FROM recordings WHERE recording_id IN ({','.join('?' * len(page_ids))})",
                    page_ids,
                )
            }
            rows = [by_id[i] for i in page_ids]
        items = self._hydrate(rows)
        if f.matched_words is not None and items:
            hits = self._hits([i.recording_id for i in items], f.matched_words)
            for item in items:
                item.transcript_hits = hits.get(item.recording_id, [])
        following = q.offset + len(items)
        if exact:
            total = counted
        elif items and not more:  # the last page: now the total is known
            total, exact = following, True
        else:  # at least the cap, and at least what this page shows to exist
            total = max(self.count_limit, following + 1) if items else self.count_limit
        return RecordingPage(
            items=items,
            total=total,
            total_exact=exact,
            limit=q.limit,
            offset=q.offset,
            next_offset=following if more else None,
        )

    def _hits(self, recording_ids: list[str], match: str, limit: int = 5) -> dict[str, list[TranscriptHit]]:
        """The first `limit` segments of each recording holding every word: one statement for the page (on
        PostgreSQL the page's segments are read by recording id, not the index of every matching word)."""
        marks = ",".join("?" * len(recording_ids))
        found: dict[str, list[TranscriptHit]] = {}
        for h in self._c.execute(
            'SELECT recording_id, speaker, start, "end", text FROM (SELECT recording_id, speaker, start,'
            ' "end", text, ROW_NUMBER() OVER (PARTITION BY recording_id ORDER BY CAST(start AS REAL)) AS n'
            f" FROM transcript_segments WHERE {search.MATCH[self.db.dialect]}"
            f" AND recording_id IN ({marks})) hits WHERE n <= ? ORDER BY recording_id, n",
            (match, *recording_ids, limit),
        ):
            found.setdefault(h["recording_id"], []).append(
                TranscriptHit(speaker=h["speaker"], start=h["start"], end=h["end"], text=h["text"])
            )
        return found

    def _hydrate(self, rows: list[sqlite3.Row]) -> list[RecordingOut]:
        ids = [r["recording_id"] for r in rows]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        tags: dict[tuple[str, str], dict[str, str]] = {}
        for t in self._c.execute(f"SELECT * FROM tags WHERE recording_id IN ({marks})", ids):
            tags.setdefault((t["recording_id"], t["participant_id"]), {})[t["key"]] = t["value"]
        people: dict[str, list[ParticipantOut]] = {}
        for p in self._c.execute(
            f"SELECT * FROM participants WHERE recording_id IN ({marks})"
            " ORDER BY joined_at NULLS FIRST, participant_id",  # SQLite's order, spelled for PostgreSQL too
            ids,
        ):
            people.setdefault(p["recording_id"], []).append(
                ParticipantOut(
                    id=p["participant_id"],
                    display_name=p["display_name"],
                    metadata=tags.get((p["recording_id"], p["participant_id"]), {}),
                    joined_at=p["joined_at"],
                    left_at=p["left_at"],
                )
            )
        return [
            RecordingOut(
                recording_id=r["recording_id"],
                room_id=r["room_id"],
                call_id=r["call_id"],
                status=RecordingStatus(r["status"]),
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                duration=r["duration"],
                tracks=r["tracks"],
                bytes=r["bytes"],
                metadata=tags.get((r["recording_id"], ""), {}),
                participants=people.get(r["recording_id"], []),
                legal_hold=bool(r["legal_hold"]),
                legal_hold_reason=r["legal_hold_reason"],
                retention_until=r["retention_until"],
                deleted_at=r["deleted_at"],
            )
            for r in rows
        ]


RecordingHook = Callable[[RecordingInfo], None]


class CatalogSink:
    """The RecordingSink that indexes every recording in the catalog. `on_start` hooks run first, on the
    manager's own RecordingInfo (the room policy's tags and call id are applied there), so put this sink
    before the others."""

    def __init__(self, catalog: Catalog, on_start: list[RecordingHook] | None = None) -> None:
        self.catalog = catalog
        self.on_start = list(on_start or [])
        self.segment_listeners: list[Callable[[SegmentInfo], None]] = []
        self.track_listeners: list[Callable[[TrackSummary], None]] = []
        self._ids: dict[Path, str] = {}
        self._participants: dict[Path, dict[str, str]] = {}

    def _submit(self, what: str, fn: Callable[[], None]) -> Future[None]:
        future = self.catalog.db.submit(fn)

        def report(f: Future[None]) -> None:
            if (exc := f.exception()) is not None:
                log.error("catalog: cannot record %s: %s", what, exc)

        future.add_done_callback(report)
        return future

    def recording_started(self, info: RecordingInfo) -> None:
        for hook in self.on_start:
            try:
                hook(info)
            except Exception:
                log.exception("recording %s: a start hook failed", info.recording_id)
        self._ids[info.folder] = info.recording_id
        self._participants[info.folder] = info.track_participants
        snapshot = info.model_copy(deep=True)
        self._submit(
            f"the start of {info.recording_id}",
            lambda: self.catalog.upsert_recording(snapshot, RecordingStatus.RECORDING),
        )

    def segment_closed(self, folder: Path, track: str, segment: SegmentInfo) -> None:
        for listener in self.segment_listeners:
            listener(segment)
        recording_id = self._ids.get(folder)
        if recording_id is not None:
            self._submit("a segment", lambda: self.catalog.add_bytes(recording_id, segment.size))

    def track_finished(self, folder: Path, summary: TrackSummary) -> None:
        for listener in self.track_listeners:
            listener(summary)
        recording_id = self._ids.get(folder)
        if recording_id is None:
            return
        participant = self._participants.get(folder, {}).get(summary.name)
        snapshot = summary.model_copy(deep=True)
        self._submit("a track", lambda: self.catalog.add_track(recording_id, participant, snapshot))

    def recording_paused(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        snapshot = pause.model_copy()
        self._submit("a pause", lambda: self.catalog.add_pause(info.recording_id, participant, snapshot))

    def recording_resumed(self, info: RecordingInfo, participant: str | None, pause: PauseInterval) -> None:
        snapshot = pause.model_copy()
        self._submit("a resume", lambda: self.catalog.end_pause(info.recording_id, participant, snapshot))

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        snapshot = info.model_copy(deep=True)
        failed = any(t.state == "failed" for t in tracks)
        status = RecordingStatus.FAILED if failed else RecordingStatus.FINISHED

        def finish() -> None:
            for summary in tracks:
                self.catalog.add_track(
                    snapshot.recording_id, snapshot.track_participants.get(summary.name), summary
                )
            self.catalog.upsert_recording(snapshot, status)
            for pause in snapshot.pauses:
                self.catalog.end_pause(snapshot.recording_id, None, pause)
            self.catalog.close_pauses(snapshot.recording_id, snapshot.finished_at or time.time())

        self._ids.pop(info.folder, None)
        self._participants.pop(info.folder, None)
        await self.catalog.db.run(finish)

    def sync_live(self, infos: list[RecordingInfo]) -> Future[None]:
        """Index the participants of recordings in progress (the sink hears of no joins), before a search."""
        snapshots = [(i.recording_id, [p.model_copy(deep=True) for p in i.participants]) for i in infos]

        def sync() -> None:
            for recording_id, participants in snapshots:
                for p in participants:
                    self.catalog.upsert_participant(recording_id, p)

        return self._submit("live participants", sync)
