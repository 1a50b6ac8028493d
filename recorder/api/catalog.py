"""The catalog: every recording the manager makes, indexed in SQLite for search.

`CatalogSink` is a RecordingSink: it hears every recording's start, segments, tracks, pauses and finish
and queues the writes on the database's worker thread (never blocking the loop, keeping their order).
`Catalog` answers the API's queries and updates (metadata, legal hold, deletion tombstones).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

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
    SortOrder,
    TrackOut,
    TranscriptHit,
)
from recorder.models import PauseInterval, SegmentInfo, TrackSummary
from recorder.recording import ParticipantInfo, RecordingInfo

log = logging.getLogger(__name__)


class Catalog:
    def __init__(self, db: Database, retention_days: float = 0.0) -> None:
        self.db = db
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
        return now

    def index_transcript(self, recording_id: str, segments: list[TranscriptHit]) -> None:
        """Replace the recording's transcript in the full-text index (one row per segment)."""
        self._c.execute("DELETE FROM transcript_segments WHERE recording_id = ?", (recording_id,))
        self._c.executemany(
            'INSERT INTO transcript_segments (text, recording_id, speaker, start, "end")'
            " VALUES (?, ?, ?, ?, ?)",
            [(s.text, recording_id, s.speaker, s.start, s.end) for s in segments],
        )

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
        return RecordingDetail(**out.model_dump(), pauses=pauses, track_list=tracks)

    def search(self, q: SearchQuery) -> RecordingPage:
        where: list[str] = []
        args: list[object] = []
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
        # Participant and tag filters as `IN (subquery)`: each subquery runs once on its index (a
        # correlated EXISTS probed the tags' (key, value) index once per recording: seconds at 10,000
        # recordings, see bench/console_search.py). {by_id} is "" for the count (each match looked up by
        # id), and for the page too when few match; when many do, "+" (walk the started_at index and stop
        # after the page: a tag matching a third of 100,000 recordings need not sort them all).
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
        match = _match(q.q) if q.q is not None else None
        if match is not None:
            where.append(
                "{by_id}r.recording_id IN (SELECT recording_id FROM transcript_segments"
                f" WHERE {_MATCH[self.db.dialect]})"
            )
            args.append(match)
        elif q.q is not None:
            where.append("1 = 0")  # no word in q: nothing was said that matches
        if q.started_after is not None:
            where.append("r.started_at >= ?")
            args.append(q.started_after.timestamp())
        if q.started_before is not None:
            where.append("r.started_at < ?")
            args.append(q.started_before.timestamp())
        now = time.time()
        duration = "COALESCE(r.duration, ? - r.started_at)"
        if q.min_duration is not None:
            where.append(f"{duration} >= ?")
            args += [now, q.min_duration]
        if q.max_duration is not None:
            where.append(f"{duration} <= ?")
            args += [now, q.max_duration]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        counted = clause.replace("{by_id}", "")
        total = int(self._c.execute(f"SELECT COUNT(*) FROM recordings r {counted}", args).fetchone()[0])
        key, key_args = _sort_key(q.sort, now)
        direction = "ASC" if q.order is SortOrder.ASC else "DESC"
        # (SQLite's planner hint; PostgreSQL's planner weighs the two plans itself)
        hint = total > 2000 and q.sort is SortField.STARTED_AT and self.db.dialect == "sqlite"
        walk = "+" if hint else ""
        # Sorting by anything but started_at (no index) sorts every match: sort the ids alone (a small
        # sorter row, about half the time of sorting whole rows on 100,000), then read the page's rows.
        rows = self._c.execute(
            f"SELECT {'r.*' if q.sort is SortField.STARTED_AT else 'r.recording_id'}"
            f" FROM recordings r {clause.replace('{by_id}', walk)}"
            f" ORDER BY {key} {direction}, r.recording_id {direction} LIMIT ? OFFSET ?",
            [*args, *key_args, q.limit, q.offset],
        ).fetchall()
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
        if match is not None:
            for item in items:
                item.transcript_hits = self._hits(item.recording_id, match)
        following = q.offset + len(items)
        return RecordingPage(
            items=items,
            total=total,
            limit=q.limit,
            offset=q.offset,
            next_offset=following if following < total else None,
        )

    def _hits(self, recording_id: str, match: str, limit: int = 5) -> list[TranscriptHit]:
        return [
            TranscriptHit(speaker=h["speaker"], start=h["start"], end=h["end"], text=h["text"])
            for h in self._c.execute(
                f'SELECT speaker, start, "end", text FROM transcript_segments WHERE {_MATCH[self.db.dialect]}'
                " AND recording_id = ? ORDER BY CAST(start AS REAL) LIMIT ?",
                (match, recording_id, limit),
            )
        ]

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


MAX_TERMS = 16

# "Every word in one segment": FTS5 in SQLite, the generated tsvector `words` in PostgreSQL (the same quoted
# words: the 'simple' parser drops the quotes). recorder/db/postgres.py says why this is not translated.
_MATCH = {
    "sqlite": "transcript_segments MATCH ?",
    "postgresql": "words @@ plainto_tsquery('simple', ?)",
}


def _sort_key(field: SortField, now: float) -> tuple[str, list[object]]:
    """The ORDER BY expression of a sort field (from this fixed table, never from the request's text)."""
    if field is SortField.DURATION:
        return "COALESCE(r.duration, ? - r.started_at)", [now]
    if field is SortField.FINISHED_AT:
        return "COALESCE(r.finished_at, ?)", [now]
    return _SORT_COLUMNS[field], []


_SORT_COLUMNS: dict[SortField, str] = {
    SortField.STARTED_AT: "r.started_at",
    SortField.ROOM: "COALESCE(r.room_id, '')",
    SortField.PARTICIPANTS: "(SELECT COUNT(*) FROM participants p WHERE p.recording_id = r.recording_id)",
    SortField.BYTES: "r.bytes",
    SortField.STATUS: "r.status",
}


def _match(text: str) -> str | None:
    """An FTS5 query holding every word of `text` (each quoted: no FTS5 syntax from the caller), or None
    when it has no word."""
    words = re.findall(r"\w+", text)[:MAX_TERMS]
    return " ".join(f'"{w}"' for w in words) if words else None


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
