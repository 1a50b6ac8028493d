"""`Transcriber`: the RecordingSink that transcribes (and redacts) finished recordings in the background.

When a recording finishes and its tags (its room's policy: `transcribe`, `redact`; else the
`transcripts` settings) ask for a transcript, `recording_finished` writes a job file
(`<data_dir>/transcripts/jobs/<job id>.json`) and returns; a task then:

1. `work`: transcribes the recording folder's audio tracks, and redacts the card numbers found, in the
   bounded pool of worker processes (recorder/transcripts/work.py); the result is written into the job
   file (stage `publish`);
2. indexes the transcript for search (`index`, the catalog's `index_transcript`) and, with an archive,
   waits until the recording is announced and its composites are handed over (one revision at a time),
   then adds the files to the signed manifest as a new revision (recorder/transcripts/revision.py) and,
   once the spool has stored them, publishes transcript.ready and redaction.finished; each step is
   audited (`audit`). With `keep_original = false` the unredacted originals are deleted first
   (recorder/transcripts/originals.py). A job that fails publishes transcript.failed or
   redaction.failed.

Only then is the job file removed: a restart at any point does the job again from its stage (start()
reads the job files); an error on the way (the store unavailable) has the job tried again after
`retry_delay` (doubling up to `retry_max`) without waiting for a restart.
While a recording has a job, `holding(recording_id)` is true, which keeps the
archive from deleting the local folder the job reads. A manual redaction (`redact`, the API's POST
/v1/recordings/{id}/redactions) is a job of its own that goes the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from postprocess.options import CompositeOptions
from postprocess.settings import CompositeSettings
from recorder.durable_json import read_models, remove_model, write_model
from recorder.manifest import MANIFEST_NAME, Manifest, StoredObject
from recorder.models import TrackSummary
from recorder.recording import FinishedRecordingSink, RecordingInfo
from recorder.transcripts import originals
from recorder.transcripts.revision import add_to_manifest
from recorder.transcripts.settings import TranscriptSettings
from recorder.transcripts.work import (
    Interval,
    TranscriptWorkers,
    WorkError,
    Workers,
    WorkRequest,
    WorkResult,
)
from recorder.webhooks import (
    Redaction,
    RedactionFailed,
    RedactionFinished,
    TranscriptFailed,
    TranscriptReady,
    WebhookEvent,
)
from recorder.webhooks.events import RecordingDeleted

if TYPE_CHECKING:
    from recorder.archive.archive import Archive

log = logging.getLogger(__name__)

Index = Callable[[str, Path], Awaitable[None]]
"""(recording id, transcript.json) -> the transcript is searchable."""
Audit = Callable[[str, str, str, dict[str, str | int | float | bool | None]], Awaitable[None]]
"""(action, recording id, outcome, detail) -> appended to the audit log."""
Protected = Callable[[str], Awaitable[str | None]]
"""(recording id) -> why the catalog keeps the recording's objects (legal hold, retention), or None."""
Forget = Callable[[str, list[str], str, float], Awaitable[None]]
"""(recording id, object names, rule, when) -> the catalog records them as deleted."""


class TranscriptJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    info: RecordingInfo
    request: WorkRequest
    by: str = Field(default="callvault", description="Who asked: the service, or the admin key's name.")
    queued_at: float
    stage: Literal["work", "publish"] = "work"
    result: WorkResult | None = None
    error: str | None = None
    removal: list[StoredObject] | None = Field(
        default=None, description="keep_original = false: the originals to delete, decided once."
    )


class Transcriber(FinishedRecordingSink):
    """See the module documentation."""

    def __init__(
        self,
        settings: TranscriptSettings,
        data_dir: Path,
        archive: Archive | None = None,
        workers: TranscriptWorkers | None = None,
    ) -> None:
        self.settings = settings
        self.jobs_dir = data_dir / "transcripts" / "jobs"
        self.archive = archive
        self.workers: Workers = workers or TranscriptWorkers(settings)
        self.index: Index | None = None
        self.audit: Audit | None = None
        self.protected: Protected | None = None
        self.forget: Forget | None = None
        self.composites: CompositeSettings | None = None
        """How the service builds composites: a redacted copy includes those of the recording built again."""
        self.busy: list[Callable[[str], bool]] = []
        """Checks that hold a revision back (the compositor still building the recording's composites)."""
        self.poll = 0.1
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tidying: dict[str, asyncio.Lock] = {}
        self._loaded: list[TranscriptJob] | None = None
        self.done = 0
        self.failed = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the jobs a stop or a crash interrupted and hold their recordings' folders (before the
        archive starts: it would otherwise delete a folder a job still needs)."""
        if self._loaded is not None:
            return
        jobs, bad = await asyncio.to_thread(read_models, self.jobs_dir, TranscriptJob)
        for path, why in bad:
            log.error("transcripts: unreadable job %s, left in place: %s", path, why)
        self._loaded = sorted(jobs, key=lambda j: j.queued_at)
        for job in self._loaded:
            self._hold(job.info.recording_id)

    async def start(self) -> None:
        """Do again what a stop or a crash interrupted (once the archive has started)."""
        await self.load()
        jobs, self._loaded = self._loaded or [], []
        for job in jobs:
            self._spawn(job, held=True)
        if jobs:
            log.info("transcripts: %d interrupted jobs resumed", len(jobs))

    async def stop(self) -> None:
        """Cancel what is running (its job files stay for the next start) and stop the workers."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.workers.shutdown)

    @contextlib.asynccontextmanager
    async def reserved(self, recording_id: str) -> AsyncIterator[None]:
        """Hold the recording's local folder while the caller looks at it and queues a job (a tidy-up
        already under way finishes first: the folder is then either whole or gone)."""
        self._hold(recording_id)
        try:
            async with self._tidying.setdefault(recording_id, asyncio.Lock()):
                pass
            yield
        finally:
            self._release(recording_id)

    def holding(self, recording_id: str) -> bool:
        """Whether a job of the recording still needs its local folder."""
        return self._held.get(recording_id, 0) > 0

    def stats(self) -> dict[str, int]:
        return {"pending": len(self._tasks), "done": self.done, "failed": self.failed}

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- RecordingSink (FinishedRecordingSink ignores the rest) -----------------------------------------

    async def recording_finished(self, info: RecordingInfo, tracks: list[TrackSummary]) -> None:
        redact = self.settings.wants_redaction(info.metadata)
        if not (redact or self.settings.wants_transcript(info.metadata)):
            return
        if not any(t.file and t.kind.value == "audio" for t in tracks):
            log.info("recording %s: no audio, no transcript", info.recording_id)
            return
        request = WorkRequest(folder=info.folder, transcribe=True, redact_auto=redact)
        await self.submit(info, request)

    async def redact(self, info: RecordingInfo, intervals: list[Interval], by: str) -> TranscriptJob:
        """A manual redaction: queued durably, done like the automatic ones."""
        return await self.submit(
            info, WorkRequest(folder=info.folder, transcribe=False, manual=intervals), by
        )

    async def submit(self, info: RecordingInfo, request: WorkRequest, by: str = "callvault") -> TranscriptJob:
        rid = info.recording_id
        now = time.time()
        job_id = rid if request.transcribe else f"{rid}.redaction-{int(now * 1000)}"
        job = TranscriptJob(id=job_id, info=info.model_copy(deep=True), request=request, by=by, queued_at=now)
        self._hold(rid)
        try:
            await asyncio.to_thread(write_model, self.jobs_dir, job_id, job)
        except OSError:
            self._release(rid)
            raise
        self._spawn(job, held=True)
        return job

    # -- jobs -------------------------------------------------------------------------------------------

    def _hold(self, rid: str) -> None:
        self._held[rid] = self._held.get(rid, 0) + 1

    def _release(self, rid: str) -> None:
        left = self._held.get(rid, 0) - 1
        if left > 0:
            self._held[rid] = left
        else:
            self._held.pop(rid, None)

    def _spawn(self, job: TranscriptJob, held: bool = False) -> None:
        if not held:
            self._hold(job.info.recording_id)
        task = asyncio.create_task(self._run(job), name=f"transcript {job.id}")
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.id, None))

    async def _run(self, job: TranscriptJob) -> None:
        rid = job.info.recording_id
        lock = self._locks.setdefault(rid, asyncio.Lock())
        finished = False
        try:
            async with lock:  # one job of a recording at a time, in the order asked
                finished = await self._attempts(job)
        finally:
            if finished:
                self._release(rid)
        if finished and not self.holding(rid):
            self._locks.pop(rid, None)
            tidying = self._tidying.setdefault(rid, asyncio.Lock())
            async with tidying:
                if not self.holding(rid):  # (a manual redaction may have reserved it meanwhile)
                    await self._tidy(job)
            self._tidying.pop(rid, None)

    async def _attempts(self, job: TranscriptJob) -> bool:
        """The job, tried again after an error (the store unavailable...) with a growing delay; its file
        stays meanwhile, so a stop or a crash leaves it to the next start."""
        attempt = 0
        while True:
            try:
                return await self._do(job)
            except Exception as exc:
                attempt += 1
                delay = self.settings.retry_delay(attempt)
                log.exception(
                    "recording %s: transcript job %s interrupted (try %d); again in %.1f s",
                    job.info.recording_id,
                    job.id,
                    attempt,
                    delay,
                )
                detail: dict[str, str | int | float | bool | None] = {
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                    "attempt": attempt,
                    "retry_in": delay,
                }
                with contextlib.suppress(Exception):  # the audit log may be what failed
                    await self._audit(job, "retry", detail)
                await asyncio.sleep(delay)

    async def _do(self, job: TranscriptJob) -> bool:
        """The job, from its stage; True once it is done (or failed for good) and its file removed."""
        rid = job.info.recording_id
        if job.stage == "work":
            if job.request.redact_auto or job.request.manual:
                # the composites are built before the redacted copy is made (it rebuilds them)
                await self._until(lambda: not any(b(rid) for b in self.busy))
                job.request.composites = await asyncio.to_thread(self._composites_of, job.info.folder)
                job.request.info = job.info
            try:
                job.result = await self.workers.submit(job.request, job.id)
            except WorkError as exc:
                job.error = str(exc)
                log.error("recording %s: transcript job %s failed: %s", rid, job.id, exc)
            job.stage = "publish"
            await asyncio.to_thread(write_model, self.jobs_dir, job.id, job)
        await self._publish(job)
        await asyncio.to_thread(remove_model, self.jobs_dir, job.id)
        if job.error is None:
            self.done += 1
        else:
            self.failed += 1
        return True

    async def _publish(self, job: TranscriptJob) -> None:
        info, result = job.info, job.result
        rid = info.recording_id
        if result is None:
            await self._audit(job, "failed", {"error": job.error or "unknown"})
            await self._announce_failure(job)
            return
        if (result.transcript or result.redacted) and self.index is not None:  # search shows the masked text
            await self.index(rid, info.folder / "transcript.json")
        archive = self.archive
        manifest = None
        objects = []
        files = [*result.transcript, *result.redacted]
        if archive is not None and files:
            await self._until(
                lambda: (
                    not (
                        archive.announcing(rid)
                        or archive.composites.pending(rid)
                        or any(b(rid) for b in self.busy)
                    )
                )
            )
            if result.redacted and not self.settings.keep_original:
                await self._plan_removal(job, result)  # (checked before the copy is announced anywhere)
            manifest = await asyncio.to_thread(add_to_manifest, archive, info, files)
            objects = [o for o in manifest.objects if o.name in set(files)]
            spool = archive.running.spool
            while await asyncio.to_thread(spool.pending_count, rid):  # noqa: ASYNC110 - the spool's state
                await asyncio.sleep(self.poll)
        ids: dict[str, Any] = {"recording_id": rid, "room_id": info.room_id, "call_id": info.call_id}
        now = datetime.now(UTC)
        if result.transcript:
            ready = TranscriptReady(
                **ids,
                ready_at=now,
                model=result.model,
                segments=result.segments,
                words=result.words,
                objects=[o for o in objects if o.name in result.transcript],
                manifest=manifest,
            )
            await self._announce(ready, f"msg_{rid}.transcript")
            await self._audit(job, "ok", {"model": result.model, "segments": result.segments})
        if result.redacted:
            kept = self.settings.keep_original or not await self._drop_originals(job, result)
            done = RedactionFinished(
                **ids,
                finished_at=now,
                redactions=[Redaction.model_validate(r.model_dump()) for r in result.redactions],
                objects=[o for o in objects if o.name in result.redacted],
                manifest=manifest,
                original_kept=kept,
            )
            await self._announce(done, f"msg_{job.id}.redaction")
            for r in result.redactions:
                detail: dict[str, str | int | float | bool | None] = {
                    "start": r.start,
                    "end": r.end,
                    "reason": r.reason,
                    "rule": r.rule,
                }
                await self._audit(job, "ok", detail, action="recording.redacted")
        for error in result.errors:
            log.error("recording %s: %s", rid, error)
            await self._audit(job, "failed", {"error": error}, action="recording.redaction")
        if job.error is not None:
            await self._audit(job, "failed", {"error": job.error})

    # -- keep_original = false --------------------------------------------------------------------------

    async def _plan_removal(self, job: TranscriptJob, result: WorkResult) -> None:
        """Decide once (kept in the job file) which originals the redacted copy replaces, and check that
        the store lets them go (raises StorageError while the store cannot say: the job is tried again)."""
        archive, info = self.archive, job.info
        assert archive is not None
        if job.removal is None:
            copy = result.redacted[0].split("/", 1)[0]
            current = await asyncio.to_thread(_manifest_of, info.folder)
            masked = f"{copy}/transcript.json" in result.redacted
            job.removal = originals.plan_removal(
                current, copy, result.originals, transcript_too=masked and not job.request.transcribe
            )
            await asyncio.to_thread(write_model, self.jobs_dir, job.id, job)
        await asyncio.to_thread(originals.protection, archive.store, job.removal)

    async def _drop_originals(self, job: TranscriptJob, result: WorkResult) -> bool:
        """Delete the unredacted originals (recorder/transcripts/originals.py); False when they are kept
        (a legal hold, object lock)."""
        info, archive = job.info, self.archive
        rid = info.recording_id
        copy = result.redacted[0].split("/", 1)[0]
        reason = originals.reason_for(copy)
        if archive is None:  # local files only
            names = await asyncio.to_thread(originals.local_originals, info.folder, result.originals)
            for name in names:
                await asyncio.to_thread((info.folder / name).unlink, True)
            log.info("recording %s: unredacted %s deleted (%s)", rid, ", ".join(names), originals.RULE)
            return True
        objects = job.removal or []
        why = await self.protected(rid) if self.protected is not None else None
        if why is None and objects:
            why = await asyncio.to_thread(originals.protection, archive.store, objects)
        if why is not None:
            log.warning("recording %s: unredacted originals kept: %s", rid, why)
            await self._audit(
                job, "failed", {"error": f"originals kept: {why}"}, "recording.originals_delete"
            )
            return False
        if not objects:
            for name in result.originals:
                await asyncio.to_thread((info.folder / name).unlink, True)
            return True
        manifest = await asyncio.to_thread(originals.revise, archive, info, objects, reason)
        spool = archive.running.spool
        while await asyncio.to_thread(spool.pending_count, rid):  # noqa: ASYNC110 - the spool's state
            await asyncio.sleep(self.poll)
        await asyncio.to_thread(originals.purge, archive.store, info.folder, objects)
        for name in result.originals:  # (a track copied back from an earlier copy is not listed)
            await asyncio.to_thread((info.folder / name).unlink, True)
        names = sorted(o.name for o in objects)
        at = time.time()
        if self.forget is not None:
            await self.forget(rid, names, originals.RULE, at)
        detail: dict[str, str | int | float | bool | None] = {
            "objects": len(names),
            "names": ", ".join(names),
            "reason": reason,
            "revision": manifest.revision,
        }
        await self._audit(job, "ok", detail, action="recording.originals_delete")
        log.info("recording %s: %d unredacted originals deleted (%s)", rid, len(names), originals.RULE)
        deleted = RecordingDeleted(
            recording_id=rid,
            room_id=info.room_id,
            call_id=info.call_id,
            deleted_at=datetime.fromtimestamp(at, UTC),
            whole=False,
            rules=[originals.RULE],
            objects=names,
        )
        await self._announce(deleted, f"deleted-{rid}-{copy}")
        return True

    async def _announce_failure(self, job: TranscriptJob) -> None:
        """transcript.failed and/or redaction.failed (at most once each: fixed webhook ids)."""
        info, request = job.info, job.request
        ids: dict[str, Any] = {
            "recording_id": info.recording_id,
            "room_id": info.room_id,
            "call_id": info.call_id,
        }
        now, error = datetime.now(UTC), job.error or "unknown"
        if request.transcribe:
            failed = TranscriptFailed(
                **ids, failed_at=now, job_id=job.id, error=error, redaction_asked=request.redact_auto
            )
            await self._announce(failed, f"msg_{job.id}.transcript-failed")
        if request.redact_auto or request.manual:
            refused = RedactionFailed(
                **ids,
                failed_at=now,
                job_id=job.id,
                error=error,
                rule="manual" if request.manual else "auto",
                redactions=[Redaction.model_validate(i.model_dump()) for i in request.manual],
            )
            await self._announce(refused, f"msg_{job.id}.redaction-failed")

    def _composites_of(self, folder: Path) -> list[CompositeOptions]:
        """(blocking) The composites in the folder that this service knows how to build again."""
        if self.composites is None:
            return []
        return [o for o in self.composites.jobs(folder) if o.out is not None and o.out.is_file()]

    async def _until(self, check: Callable[[], bool]) -> None:
        """Polls the archive's state (it has no event for "announced" or "composites handed over")."""
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(self.poll)

    async def _announce(
        self,
        event: TranscriptReady | RedactionFinished | TranscriptFailed | RedactionFailed | RecordingDeleted,
        msg_id: str,
    ) -> None:
        if self.archive is not None:
            await self.archive.running.dispatcher.publish(WebhookEvent.of(event), msg_id=msg_id)

    async def _audit(
        self,
        job: TranscriptJob,
        outcome: str,
        detail: dict[str, str | int | float | bool | None],
        action: str | None = None,
    ) -> None:
        if self.audit is None:
            return
        if action is None:
            action = "transcript.made" if job.request.transcribe else "recording.redaction"
        await self.audit(action, job.info.recording_id, outcome, {"by": job.by, "job": job.id, **detail})

    async def _tidy(self, job: TranscriptJob) -> None:
        """Nothing of the recording is left to do here: its local folder goes if the archive would have
        removed it (encrypted: the plaintext copy; else `delete_local_after_upload`)."""
        archive = self.archive
        rid = job.info.recording_id
        if archive is None or archive.announcing(rid) or archive.held(rid) or archive.composites.pending(rid):
            return
        if await asyncio.to_thread(_encrypted, job.info.folder):
            await archive.drop_plaintext(rid, job.info.folder, finished=True)
        elif archive.settings.delete_local_after_upload:
            await asyncio.to_thread(shutil.rmtree, job.info.folder, True)


def _manifest_of(folder: Path) -> Manifest:
    """(blocking) The recording's current manifest. Raises OSError, ValueError."""
    return Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes())


def _encrypted(folder: Path) -> bool:
    """(blocking) Whether the folder's manifest says its recording is encrypted."""
    try:
        return Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes()).encryption is not None
    except (OSError, ValueError):
        return False
