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
   audited (`audit`).

Only then is the job file removed: a restart at any point does the job again from its stage (start()
reads the job files). While a recording has a job, `holding(recording_id)` is true, which keeps the
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
from recorder.manifest import MANIFEST_NAME, Manifest
from recorder.models import TrackSummary
from recorder.recording import FinishedRecordingSink, RecordingInfo
from recorder.transcripts.revision import add_to_manifest
from recorder.transcripts.settings import TranscriptSettings
from recorder.transcripts.work import Interval, TranscriptWorkers, WorkError, WorkRequest, WorkResult
from recorder.webhooks import Redaction, RedactionFinished, TranscriptReady, WebhookEvent

if TYPE_CHECKING:
    from recorder.archive.archive import Archive

log = logging.getLogger(__name__)

Index = Callable[[str, Path], Awaitable[None]]
"""(recording id, transcript.json) -> the transcript is searchable."""
Audit = Callable[[str, str, str, dict[str, str | int | float | bool | None]], Awaitable[None]]
"""(action, recording id, outcome, detail) -> appended to the audit log."""


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
        self.workers = workers or TranscriptWorkers(settings)
        self.index: Index | None = None
        self.audit: Audit | None = None
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
                finished = await self._do(job)
        except Exception:  # the job stays: the next start does it again
            log.exception("recording %s: transcript job %s interrupted", rid, job.id)
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
                job.result = await self.workers.submit(job.request)
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
            done = RedactionFinished(
                **ids,
                finished_at=now,
                redactions=[Redaction.model_validate(r.model_dump()) for r in result.redactions],
                objects=[o for o in objects if o.name in result.redacted],
                manifest=manifest,
                original_kept=self.settings.keep_original,
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
            if not self.settings.keep_original:
                for name in result.originals:
                    await asyncio.to_thread((info.folder / name).unlink, True)
                    log.info("recording %s: unredacted %s deleted (transcripts.keep_original)", rid, name)
        for error in result.errors:
            log.error("recording %s: %s", rid, error)
            await self._audit(job, "failed", {"error": error}, action="recording.redaction")
        if job.error is not None:
            await self._audit(job, "failed", {"error": job.error})

    def _composites_of(self, folder: Path) -> list[CompositeOptions]:
        """(blocking) The composites in the folder that this service knows how to build again."""
        if self.composites is None:
            return []
        return [o for o in self.composites.jobs(folder) if o.out is not None and o.out.is_file()]

    async def _until(self, check: Callable[[], bool]) -> None:
        """Polls the archive's state (it has no event for "announced" or "composites handed over")."""
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(self.poll)

    async def _announce(self, event: TranscriptReady | RedactionFinished, msg_id: str) -> None:
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


def _encrypted(folder: Path) -> bool:
    """(blocking) Whether the folder's manifest says its recording is encrypted."""
    try:
        return Manifest.model_validate_json((folder / MANIFEST_NAME).read_bytes()).encryption is not None
    except (OSError, ValueError):
        return False
