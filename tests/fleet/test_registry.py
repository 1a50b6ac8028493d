"""The fleet's catalog rows on both backends, in process (recorder/fleet/registry.py): a node name taken by a
live recorder is refused, its own earlier run may take it back; a silent recorder's recordings in progress
are marked failed once, with the segments recovered and an audit entry; a recorder that came back first is
never marked, and one that recovers a marked recording lifts the mark."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from postgres_kit import BACKENDS

from recorder.api.audit import AuditLog
from recorder.api.catalog import Catalog
from recorder.api.db import Database
from recorder.api.models import LiveParticipant, RecordingStatus
from recorder.fleet import registry, rooms
from recorder.fleet.models import RecoveredSegment, Registration, failure_of
from recorder.fleet.registry import Beat, NodeNameInUseError
from recorder.fleet.rooms import LiveRoom
from recorder.recording import RecordingInfo

pytestmark = [BACKENDS, pytest.mark.timeout(120)]


def _me(node: str, incarnation: str) -> Registration:
    return Registration(
        node=node, incarnation=incarnation, sfu="ws://janus-a:8188", rtp_port_min=40000, rtp_port_max=40999,
        version="0.1.0",
    )  # fmt: skip


def _open(tmp_path: Path, url: str | None) -> Database:
    return Database(url if url is not None else tmp_path / "catalog.sqlite3")


def _age(db: Database, node: str, seconds: float) -> None:
    """The node's last heartbeat `seconds` ago (as if it had been silent that long)."""
    db.submit(
        lambda: db.connection.execute(
            "UPDATE recorders SET heartbeat_at = heartbeat_at - ? WHERE node = ?", (seconds, node)
        )
    ).result()


def test_names_heartbeats_and_the_dead(tmp_path: Path, catalog_url: str | None) -> None:
    db = _open(tmp_path, catalog_url)
    c, dialect = db.connection, db.dialect
    audit = AuditLog(db)
    catalog = Catalog(db)
    run = db.submit
    try:
        a1, b = _me("rec-a", "a1"), _me("rec-b", "b1")
        run(lambda: registry.register(c, dialect, a1, 30, None)).result()
        run(lambda: registry.register(c, dialect, b, 30, None)).result()
        # a second recorder with rec-a's name (another data_dir: no earlier token) is refused, clearly
        with pytest.raises(NodeNameInUseError, match="'rec-a' is in use by a running recorder"):
            run(lambda: registry.register(c, dialect, _me("rec-a", "x"), 30, None)).result()
        fleet = run(lambda: registry.list_recorders(c, dialect, 30)).result()
        assert [(r.node, r.state, r.sfu) for r in fleet.recorders] == [
            ("rec-a", "alive", "ws://janus-a:8188"),
            ("rec-b", "alive", "ws://janus-a:8188"),
        ]
        # two recordings of rec-a in progress, one with two closed segments; one of rec-b
        for rid, node in (("r-a1", "rec-a"), ("r-a2", "rec-a"), ("r-b1", "rec-b")):
            info = RecordingInfo(
                recording_id=rid, folder=tmp_path / rid, room_id="room", started_at=time.time()
            )
            run(lambda i=info: catalog.upsert_recording(i, RecordingStatus.RECORDING)).result()  # type: ignore[misc]
            run(lambda r=rid, n=node: registry.claim(c, r, n)).result()  # type: ignore[misc]
        for index in (0, 1):
            seg = RecoveredSegment(
                track="alice-video-0", index=index, path=f"alice-video-0/{index:05d}.webm", size=1000 + index,
                sha256="ab" * 32,
            )  # fmt: skip
            run(lambda s=seg: registry.add_segment(c, dialect, "r-a1", s)).result()  # type: ignore[misc]
        # rec-a silent for longer than dead_after: rec-b marks its recordings failed, once
        _age(db, "rec-a", 60)
        dead, failed = run(lambda: registry.reap(c, dialect, "rec-b", 30, audit)).result()
        assert dead == ["rec-a"]
        assert sorted(f.recording_id for f in failed) == ["r-a1", "r-a2"]
        assert run(lambda: registry.reap(c, dialect, "rec-b", 30, audit)).result() == ([], [])
        row = run(
            lambda: c.execute("SELECT status, failure FROM recordings WHERE recording_id = 'r-a1'").fetchone()
        ).result()
        assert row["status"] == "failed"
        failure = failure_of(row["failure"])
        assert failure is not None and failure.recorder == "rec-a" and failure.detected_by == "rec-b"
        assert [s.path for s in failure.segments] == ["alice-video-0/00000.webm", "alice-video-0/00001.webm"]
        assert run(lambda: catalog.get("r-b1")).result().status is RecordingStatus.RECORDING  # type: ignore[union-attr]
        entries = [e for e in run(lambda: audit_entries(db)).result() if e[0] == "recording.failed"]
        assert sorted(e[1] for e in entries) == ["r-a1", "r-a2"]
        fleet = run(lambda: registry.list_recorders(c, dialect, 30)).result()
        assert (fleet.alive, fleet.dead) == (1, 1)
        # rec-a was only paused: its next heartbeat finds the mark and lifts it (alive again), the one after
        # finds nothing to lift
        assert run(lambda: registry.heartbeat(c, dialect, a1)).result() is Beat.REVIVED
        assert run(lambda: registry.heartbeat(c, dialect, a1)).result() is Beat.HELD
        fleet = run(lambda: registry.list_recorders(c, dialect, 30)).result()
        assert (fleet.alive, fleet.dead) == (2, 0)
        # rec-a's own restart (its earlier token) takes its name back at once and recovers r-a1: the
        # recording is the recorder's again (its finish writes the status), the mark is lifted, audited
        a2 = _me("rec-a", "a2")
        run(lambda: registry.register(c, dialect, a2, 30, "a1")).result()
        info = RecordingInfo(recording_id="r-a1", folder=tmp_path / "r-a1", room_id="room", started_at=0.0)
        info.finished_at = time.time()
        run(lambda: catalog.upsert_recording(info, RecordingStatus.FINISHED)).result()
        run(lambda: registry.recovered(c, "r-a1", "rec-a", audit)).result()
        detail = run(lambda: catalog.get("r-a1")).result()
        assert detail is not None and detail.status is RecordingStatus.FINISHED
        assert (
            run(
                lambda: c.execute("SELECT failure FROM recordings WHERE recording_id = 'r-a1'").fetchone()[0]
            ).result()
            is None
        )
        assert ("recording.recovered", "r-a1") in run(lambda: audit_entries(db)).result()
        # a recorder that came back in time is never marked: its heartbeat is fresh again
        run(lambda: registry.claim(c, "r-b1", "rec-b")).result()
        _age(db, "rec-b", 60)
        assert run(lambda: registry.heartbeat(c, dialect, b)).result() is Beat.HELD
        assert run(lambda: registry.reap(c, dialect, "rec-a", 30, audit)).result() == ([], [])
        # rec-b restarts having lost its data folder (no token: it waits until its row is old), its state
        # names none of its recordings: the one it still had in progress is failed at once, not left open
        _age(db, "rec-b", 60)
        b2 = _me("rec-b", "b2")
        lost = run(lambda: registry.register(c, dialect, b2, 30, None, set(), audit)).result()
        assert [f.recording_id for f in lost] == ["r-b1"] and "restarted without it" in lost[0].failure.reason
        assert run(lambda: catalog.get("r-b1")).result().status is RecordingStatus.FAILED  # type: ignore[union-attr]
        assert ("recording.failed", "r-b1") in run(lambda: audit_entries(db)).result()
        b = b2
        # a recording its state names is kept for it to take up
        info = RecordingInfo(
            recording_id="r-b2", folder=tmp_path / "r-b2", room_id="room", started_at=time.time()
        )
        run(lambda: catalog.upsert_recording(info, RecordingStatus.RECORDING)).result()
        run(lambda: registry.claim(c, "r-b2", "rec-b")).result()
        b3 = _me("rec-b", "b3")
        assert run(lambda: registry.register(c, dialect, b3, 30, "b2", {"r-b2"}, audit)).result() == []
        assert run(lambda: catalog.get("r-b2")).result().status is RecordingStatus.RECORDING  # type: ignore[union-attr]
        b = b3
        # a clean stop: stopped, not dead; a heartbeat of a run that lost its name says so
        run(lambda: registry.leave(c, dialect, b)).result()
        states = {
            r.node: r.state for r in run(lambda: registry.list_recorders(c, dialect, 30)).result().recorders
        }
        assert states == {"rec-a": "alive", "rec-b": "stopped"}
        assert run(lambda: registry.heartbeat(c, dialect, a1)).result() is Beat.LOST
    finally:
        db.close()


def audit_entries(db: Database) -> list[tuple[str, str]]:
    return [
        (r["action"], r["target"])
        for r in db.connection.execute("SELECT action, target FROM audit ORDER BY seq")
    ]


def test_live_rooms_as_each_recorder_wrote_them(tmp_path: Path, catalog_url: str | None) -> None:
    """recorder/fleet/rooms.py: a recorder's rooms are read back with its state; a silent one's are listed
    `dead` (the API then shows nothing in progress there), a clean stop empties them, and a new run of the
    name starts with none; another run's write under a taken name changes nothing."""
    db = _open(tmp_path, catalog_url)
    c, dialect = db.connection, db.dialect
    run = db.submit
    bob = LiveParticipant(id="bob", display_name="Bob", paused=True, tracks=["bob-audio"])
    room = LiveRoom(room_id="room-7", recording_id="r-7", paused=False, participants=[bob])
    try:
        a1, b = _me("rec-a", "a1"), _me("rec-b", "b1")
        run(lambda: registry.register(c, dialect, a1, 30, None)).result()
        run(lambda: registry.register(c, dialect, b, 30, None)).result()
        run(lambda: rooms.publish(c, dialect, a1, [room])).result()
        run(lambda: rooms.publish(c, dialect, b, [room.model_copy(update={"recording_id": "r-b"})])).result()
        run(lambda: rooms.publish(c, dialect, _me("rec-a", "stale"), [])).result()  # not this name's run
        seen = run(lambda: rooms.read(c, dialect, 30)).result()
        assert [(r.node, r.state, [x.recording_id for x in r.rooms]) for r in seen] == [
            ("rec-a", "alive", ["r-7"]),
            ("rec-b", "alive", ["r-b"]),
        ]
        assert seen[0].rooms[0].participants == [bob]
        _age(db, "rec-a", 31)
        run(lambda: registry.leave(c, dialect, b)).result()
        seen = run(lambda: rooms.read(c, dialect, 30)).result()
        states = [(r.node, r.state, len(r.rooms)) for r in seen]
        assert states == [("rec-a", "dead", 1), ("rec-b", "stopped", 0)]
        run(lambda: registry.register(c, dialect, _me("rec-a", "a2"), 30, None)).result()
        assert run(lambda: rooms.read(c, dialect, 30)).result()[0].rooms == []
    finally:
        db.close()
