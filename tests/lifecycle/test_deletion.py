"""The deletion scheduler on the local store: what is due goes (originals before the composite, then the
whole recording as a tombstone), a legal hold, an object lock or a recording in progress stop it (and it
says why and when it tries again), and a crash mid-deletion is resumed by the next pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from postgres_kit import BACKENDS
from vault import DAY, OBJECTS, T0, Vault

from recorder.lifecycle.rules import KeepPeriods, RetentionRule
from recorder.lifecycle.settings import LifecycleSettings
from recorder.storage.base import Retention, StorageRefusedError
from recorder.storage.local import LocalStore
from recorder.storage.settings import RetentionMode

pytestmark = BACKENDS  # each test on the SQLite catalog and on PostgreSQL

SETTINGS = LifecycleSettings(
    defaults=KeepPeriods(composite=365),
    rules=[RetentionRule(rule_id="billing-90", rooms=["billing"], keep_days=KeepPeriods(originals=90))],
    retry_seconds=3600,
)
FINISHED = T0 + 600


async def test_originals_then_everything_goes_when_due(vault: Vault) -> None:
    vault.add("rec-1")
    vault.add("rec-other", room="sales")  # no rule for its originals: only the composite default
    folder = vault.recordings_dir / "rec-1"
    folder.mkdir(parents=True)
    (folder / "1001-video-0.webm").write_bytes(b"local copy")
    scheduler = vault.scheduler(SETTINGS)

    vault.clock.now = FINISHED + 89 * DAY
    report = await scheduler.run_once()
    assert report.evaluated == 2 and report.objects_deleted == 0
    assert len(vault.keys("rec-1")) == len(OBJECTS)

    vault.clock.now = FINISHED + 90 * DAY + 1
    report = await scheduler.run_once()
    assert report.deleted_partly == ["rec-1"] and report.deleted_whole == []
    left = {k.rsplit("/", 1)[1] for k in vault.keys("rec-1")}
    assert left == {"manifest.json", "manifest.json.sig", "composite-grid.mp4"}
    assert not (folder / "1001-video-0.webm").exists()
    assert vault.row("rec-1")["status"] == "finished"
    assert len(vault.keys("rec-other")) == len(OBJECTS)
    event, _ = vault.published[-1]
    assert event.data.kind == "recording.deleted" and not event.data.whole  # type: ignore[union-attr]
    assert sorted(event.data.objects) == ["1001-video-0.webm", "1002-audio-1.webm"]  # type: ignore[union-attr]
    assert event.data.rules == ["billing-90"]  # type: ignore[union-attr]

    vault.clock.now = FINISHED + 365 * DAY + 1
    report = await scheduler.run_once()
    assert report.deleted_whole == ["rec-1"] and report.deleted_partly == ["rec-other"]
    assert vault.keys("rec-1") == []
    left = {k.rsplit("/", 1)[1] for k in vault.keys("rec-other")}  # its originals are kept forever
    assert left == {"manifest.json", "manifest.json.sig", "1001-video-0.webm", "1002-audio-1.webm"}
    assert not folder.exists()
    row = vault.row("rec-1")
    assert row["status"] == "deleted" and row["deleted_by"] == "retention:default"
    assert row["deleted_at"] == FINISHED + 365 * DAY + 1
    rows = vault.db.submit(
        lambda: vault.db.connection.execute(
            "SELECT name, rule FROM deleted_objects WHERE recording_id = 'rec-1' ORDER BY name"
        ).fetchall()
    ).result()
    assert [(r["name"], r["rule"]) for r in rows] == [
        ("1001-video-0.webm", "billing-90"),
        ("1002-audio-1.webm", "billing-90"),
        ("composite-grid.mp4", "default"),
        ("manifest.json", None),
        ("manifest.json.sig", None),
    ]
    entries = await vault.entries("recording.retention_delete")
    assert [(e.target, e.detail["whole"]) for e in entries] == [
        ("rec-1", False),
        ("rec-1", True),
        ("rec-other", False),
    ]
    assert all(e.actor == "system" for e in entries)
    assert (await scheduler.run_once()).objects_deleted == 0  # tombstones are not due again


async def test_legal_hold_blocks_deletion_until_lifted(vault: Vault) -> None:
    vault.add("rec-held")
    holds = vault.holds()
    vault.hold("rec-held", True)
    applied = await holds.apply_pending()
    assert applied.applied == {"rec-held": len(OBJECTS)}
    store = vault.store
    key = vault.keys("rec-held")[0]
    assert store.legal_hold(key)
    with pytest.raises(StorageRefusedError, match="legal hold"):
        store.delete(key)  # the local store refuses as S3 does
    with pytest.raises(StorageRefusedError, match="legal hold"):
        store.put_bytes(key, b"overwrite")

    scheduler = vault.scheduler(SETTINGS)
    vault.clock.now = FINISHED + 400 * DAY
    report = await scheduler.run_once()
    assert report.blocked == {"rec-held": "legal hold"}
    row = vault.row("rec-held")
    assert row["lifecycle_blocked"] == "legal hold" and row["next_deletion"] == vault.clock.now + 3600
    assert len(vault.keys("rec-held")) == len(OBJECTS)

    vault.hold("rec-held", False)
    await holds.apply_pending()
    assert not any(store.legal_hold(k) for k in vault.keys("rec-held"))
    vault.clock.now += 3601
    report = await scheduler.run_once()
    assert report.deleted_whole == ["rec-held"] and vault.keys("rec-held") == []
    hold_entries = await vault.entries("recording.legal_hold_store")
    assert [e.detail["hold"] for e in hold_entries] == [True, False]


async def test_a_hold_in_the_store_alone_also_blocks(vault: Vault) -> None:
    vault.add("rec-1")
    held = vault.keys("rec-1")[2]
    vault.store.set_legal_hold(held, True)  # placed by someone else, straight in the store
    vault.clock.now = FINISHED + 400 * DAY
    report = await vault.scheduler(SETTINGS).run_once()
    assert "under legal hold in the store" in report.blocked["rec-1"]
    assert len(vault.keys("rec-1")) == len(OBJECTS)  # nothing of it deleted, not even the unheld ones


async def test_object_lock_postpones_deletion_to_the_end_of_the_lock(vault: Vault) -> None:
    vault.add("rec-locked", objects={})
    until = datetime.now(UTC) + timedelta(days=30)
    prefix = vault.prefix("rec-locked")
    vault.store.put_bytes(
        prefix + "1001-video-0.webm", b"x", retention=Retention(mode=RetentionMode.COMPLIANCE, until=until)
    )
    vault.store.put_bytes(prefix + "manifest.json", b"{}")
    vault.clock.now = datetime.now(
        UTC
    ).timestamp()  # locks run on real time: past the 90 days of its originals
    report = await vault.scheduler(SETTINGS).run_once()
    assert "object lock until" in report.blocked["rec-locked"]
    assert vault.row("rec-locked")["next_deletion"] == pytest.approx(until.timestamp())
    assert len(vault.keys("rec-locked")) == 2


async def test_recordings_in_progress_are_never_touched(vault: Vault) -> None:
    vault.add("rec-live")
    vault.add("rec-open", status="recording")
    vault.live.add("rec-live")  # finished in the catalog, still open in this process
    vault.clock.now = FINISHED + 400 * DAY
    report = await vault.scheduler(SETTINGS).run_once()
    assert report.objects_deleted == 0
    assert len(vault.keys("rec-live")) == len(OBJECTS) and len(vault.keys("rec-open")) == len(OBJECTS)


class Crash(BaseException):
    """The process dies here."""


class CrashingStore(LocalStore):
    def __init__(self, root: Path, after: int) -> None:
        super().__init__(root)
        self.left = after

    def purge(self, key: str) -> None:
        if self.left == 0:
            raise Crash(key)
        self.left -= 1
        super().purge(key)


async def test_a_crash_mid_deletion_is_resumed(vault: Vault) -> None:
    for n in range(3):
        vault.add(f"rec-{n}")
    vault.clock.now = FINISHED + 400 * DAY
    crashing = CrashingStore(vault.root / "store", after=len(OBJECTS) + 2)  # the second recording, mid-way
    with pytest.raises(Crash):
        await vault.scheduler(SETTINGS, store=crashing).run_once()
    for n in range(3):  # the batch's intents were written before anything was removed
        row = vault.row(f"rec-{n}")
        assert row["status"] == "finished" and row["lifecycle_state"] is not None
    left = sum(len(vault.keys(f"rec-{n}")) for n in range(3))
    assert 0 < left < 3 * len(OBJECTS)  # some removed, some not: the crash came mid-way

    report = await vault.scheduler(SETTINGS).run_once()  # the next start: the same deletions
    assert sorted(report.deleted_whole) == ["rec-0", "rec-1", "rec-2"]
    for n in range(3):
        assert vault.keys(f"rec-{n}") == [] and vault.row(f"rec-{n}")["status"] == "deleted"
    count = vault.db.submit(
        lambda: vault.db.connection.execute(
            "SELECT COUNT(*) FROM deleted_objects WHERE recording_id = 'rec-1'"
        ).fetchone()[0]
    ).result()
    assert count == len(OBJECTS)
    entries = await vault.entries("recording.retention_delete")
    assert sorted(e.target or "" for e in entries) == ["rec-0", "rec-1", "rec-2"]  # one per deletion
    assert len({msg for _, msg in vault.published}) == 3  # rec-0 announced again under its id: one message


async def test_batches_are_bounded(vault: Vault) -> None:
    for n in range(7):
        vault.add(f"rec-{n}", objects={"a-video-0.webm": b"v"})
    vault.clock.now = FINISHED + 400 * DAY
    scheduler = vault.scheduler(SETTINGS.model_copy(update={"batch_size": 3}))
    sizes = [len((await scheduler.run_once()).deleted_whole) for _ in range(4)]
    assert sizes == [3, 3, 1, 0]


async def test_reconciliation_at_start_restores_a_hold_the_store_lost(vault: Vault) -> None:
    vault.add("rec-held")
    vault.add("rec-lifted")
    vault.hold("rec-held", True)
    vault.hold("rec-lifted", True)
    holds = vault.holds()
    await holds.apply_pending()
    dropped = vault.keys("rec-held")[1]
    vault.store.set_legal_hold(dropped, False)  # the store lost one (a restore, a manual change...)
    vault.hold("rec-lifted", False)  # lifted while the service was down: not applied to the store yet

    report = await vault.holds().reconcile()  # the next start
    assert vault.store.legal_hold(dropped)  # placed again: the catalog holds the recording
    assert report.differences == [
        f"rec-held: {dropped} had no legal hold in the store; placed (the catalog holds it)"
    ]
    assert report.applied == {"rec-lifted": len(OBJECTS)}
    assert not any(vault.store.legal_hold(k) for k in vault.keys("rec-lifted"))
    entries = await vault.entries("lifecycle.hold_reconcile")
    assert entries[-1].outcome == "failed" and entries[-1].detail["differences"] == 1

    clean = await vault.holds().reconcile()
    assert clean.differences == [] and clean.failed == {}
    assert (await vault.entries("lifecycle.hold_reconcile"))[-1].outcome == "ok"


async def test_a_hold_placed_after_a_crash_stops_the_resumed_deletion(vault: Vault) -> None:
    vault.add("rec-0")
    vault.clock.now = FINISHED + 400 * DAY
    with pytest.raises(Crash):
        await vault.scheduler(SETTINGS, store=CrashingStore(vault.root / "store", after=2)).run_once()
    left = vault.keys("rec-0")
    assert 0 < len(left) < len(OBJECTS)
    vault.hold("rec-0", True)  # a court order arrives while the service is down
    report = await vault.scheduler(SETTINGS).run_once()
    assert report.blocked == {"rec-0": "legal hold"} and vault.keys("rec-0") == left
    vault.hold("rec-0", False)
    vault.clock.now += 3601
    assert (await vault.scheduler(SETTINGS).run_once()).deleted_whole == ["rec-0"]
