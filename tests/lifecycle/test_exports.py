"""Export jobs as the runner does them: bundles from the store, a crash mid-export resumed (bundles already
written are kept), the index signed, and a schedule firing twice (two jobs, each over its own day)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from postgres_kit import BACKENDS
from vault import OBJECTS, T0, Vault

from recorder.lifecycle.bundle_verify import verify_bundle
from recorder.lifecycle.exports import ExportRunner
from recorder.lifecycle.models import ExportFilter, ExportRequest, Include, JobState, ScheduleRequest
from recorder.lifecycle.settings import LifecycleSettings
from recorder.manifest.signing import signature_valid
from recorder.storage.base import CHUNK, ObjectStore
from recorder.storage.local import LocalStore

pytestmark = BACKENDS  # each test on the SQLite catalog and on PostgreSQL

KEY = Ed25519PrivateKey.generate()
MEDIA = [Include.ORIGINALS, Include.COMPOSITE]


class Crash(BaseException):
    """The process dies here."""


class CrashingStore(LocalStore):
    """Dies when a recording's media is read."""

    def __init__(self, root: Path, dies_on: str) -> None:
        super().__init__(root)
        self.dies_on = dies_on

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        if self.dies_on in key:
            raise Crash(key)
        return super().iter_chunks(key, chunk_size)


def runner(vault: Vault, store: ObjectStore | None = None, **settings: object) -> ExportRunner:
    return vault.exports(LifecycleSettings.model_validate(settings), KEY, store)


async def wait_state(run: ExportRunner, job_id: str, state: JobState) -> None:
    async with asyncio.timeout(30):
        await run.wait(job_id)
    job = await run.get(job_id)
    assert job is not None and job.state is state, job


async def test_a_crash_mid_export_is_resumed(vault: Vault) -> None:
    for rid in ("exp-a", "exp-b", "exp-c"):
        vault.add(rid, room="sales")
    first = runner(vault, CrashingStore(vault.root / "store", dies_on="exp-b"))
    request = ExportRequest(
        filter=ExportFilter(room="sales"), include=[*MEDIA, Include.MANIFESTS, Include.AUDIT]
    )
    job = await first.create(request, "auditor-1")
    assert job.total == 3
    task = first._tasks[job.job_id]
    with pytest.raises(Crash):
        await task
    stopped = await first.get(job.job_id)
    assert stopped is not None and stopped.state is JobState.RUNNING and stopped.done == 1
    kept = first.bundle_path(job.job_id, "exp-a")
    assert kept is not None
    written = kept.stat().st_mtime_ns, kept.stat().st_ino
    assert not list((vault.root / "exports" / job.job_id).glob(".*.tmp"))  # no half bundle left behind

    vault.db.submit(  # retention deleted one meanwhile: skipped, said so, the job goes on
        lambda: vault.db.connection.execute(
            "UPDATE recordings SET status = 'deleted' WHERE recording_id = 'exp-c'"
        )
    ).result()
    second = runner(vault)  # the next start
    assert await second.resume() == 1
    await wait_state(second, job.job_id, JobState.FINISHED)
    done = await second.get(job.job_id)
    assert done is not None and done.done == 2 and done.skipped == ["exp-c"]
    assert [b.recording_id for b in done.bundles] == ["exp-a", "exp-b"]
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == written  # not written again
    for bundle in done.bundles:
        path = second.bundle_path(job.job_id, bundle.recording_id)
        assert path is not None
        report = verify_bundle(path, KEY.public_key())
        # the synthetic manifest is not a real one: only its own check fails, the bundle holds
        assert all("manifest" in p for p in report.problems), report.problems
        assert report.files_checked == len(OBJECTS) + 3
    index = vault.root / "exports" / job.job_id / "export.json"
    assert signature_valid(
        index.read_bytes(), (index.parent / "export.json.sig").read_bytes(), KEY.public_key()
    )
    event, _ = vault.published[-1]
    assert event.type.value == "export.finished" and event.data.recordings == 2  # type: ignore[union-attr]
    entries = await vault.entries("export.finished")
    assert [e.target for e in entries] == [job.job_id]


async def test_a_schedule_fires_once_per_time_each_over_its_day(vault: Vault) -> None:
    day1 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    vault.add("sched-1", room="sales")  # started 2026-01-05 09:00
    run = runner(vault)
    vault.clock.now = day1 + 3600  # 01:00 on the 5th
    schedule = await run.add_schedule(
        ScheduleRequest(cron="0 2 * * *", filter=ExportFilter(room="sales", previous_days=1), include=MEDIA),
        "bootstrap-admin",
    )
    assert schedule.next_run == datetime(2026, 1, 5, 2, tzinfo=UTC)
    assert await run.fire_due() == []
    vault.clock.now = day1 + 2 * 3600 + 30  # 02:00:30 on the 5th: the 4th's calls, none
    first = await run.fire_due()
    assert len(first) == 1 and await run.fire_due() == []  # fired once, not again at the same time
    vault.clock.now = day1 + 86400 + 2 * 3600 + 30  # 02:00:30 on the 6th: the 5th's calls
    second = await run.fire_due()
    assert len(second) == 1 and second != first
    for job_id in (*first, *second):
        await wait_state(run, job_id, JobState.FINISHED)
    jobs = {j.job_id: j for j in await run.jobs()}
    assert jobs[first[0]].total == 0 and jobs[second[0]].total == 1
    assert jobs[second[0]].request.filter.started_after == datetime(2026, 1, 5, tzinfo=UTC)
    assert jobs[second[0]].schedule_id == schedule.schedule_id
    (listed,) = await run.schedules()
    assert listed.last_run is not None and listed.next_run == datetime(2026, 1, 7, 2, tzinfo=UTC)


async def test_an_unknown_destination_or_a_bad_cron_is_refused(vault: Vault) -> None:
    from recorder.lifecycle.exports import ExportError
    from recorder.lifecycle.models import Destination

    run = runner(vault)
    with pytest.raises(ExportError, match="no export destination 'nowhere'"):
        await run.create(ExportRequest(destination=Destination(type="s3", name="nowhere")), "auditor-1")
    with pytest.raises(ValueError, match="cron"):
        await run.add_schedule(ScheduleRequest(cron="61 * * * * *"), "bootstrap-admin")
    assert T0 > 0
