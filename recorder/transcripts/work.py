"""The work of a transcript job, in a worker process (never on the event loop): transcribe the recording
folder's audio tracks (transcript.json, transcript.vtt; the redactions of a transcript it replaces are
kept), and/or redact it (the card numbers found in its transcript, and intervals an admin gave) into a
numbered copy `redacted-<n>/` (each audio track with the intervals silenced, the masked transcript,
redactions.json). The model is loaded once per worker process.

`TranscriptWorkers` is the bounded pool: at most `processes` jobs at once, each with a time limit (a
stuck job's pool is replaced); the job files of recorder/transcripts/service.py bound the backlog."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import shutil
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from postprocess.options import CompositeError, CompositeOptions
from postprocess.workers import _init_worker, _terminate, log_setup
from recorder import logs
from recorder.recording import RecordingInfo
from recorder.transcripts.settings import TranscriptSettings

log = logging.getLogger(__name__)

REDACTED_PREFIX = "redacted-"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkError(Exception):
    """A job cannot be done (no audio, no model, a file that cannot be decoded): one line why."""


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(ge=0.0)
    end: float = Field(ge=0.0)
    reason: str
    rule: str


class WorkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: Path
    transcribe: bool
    redact_auto: bool = False
    manual: list[Interval] = Field(default_factory=list)
    composites: list[CompositeOptions] = Field(
        default_factory=list,
        description="Composites of the recording to build again from the redacted tracks.",
    )
    info: RecordingInfo | None = None


class WorkResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transcript: list[str] = Field(default_factory=list, description="transcript.json, transcript.vtt.")
    model: str = ""
    segments: int = 0
    words: int = 0
    redacted: list[str] = Field(default_factory=list, description="Files of the redacted copy.")
    redactions: list[Interval] = Field(default_factory=list)
    originals: list[str] = Field(default_factory=list, description="The audio tracks redacted copies of.")
    errors: list[str] = Field(default_factory=list, description="Composites not built again, and why.")


_engine: object | None = None
_engine_key: str | None = None


def _engine_for(settings: TranscriptSettings) -> object:
    from postprocess.transcribe.engine import Engine, EngineSettings  # noqa: PLC0415 (the optional extra)

    global _engine, _engine_key  # one loaded model per worker process
    engine_settings = EngineSettings(
        model=settings.model, language=settings.language, threads=settings.threads
    )
    key = engine_settings.model_dump_json()
    if _engine is None or _engine_key != key:
        _engine, _engine_key = Engine(engine_settings), key
    return _engine


def next_copy_number(folder: Path) -> int:
    """The n of the next `redacted-<n>/`: after those in the folder and those its manifest lists (a folder
    restored from the store holds only the audio tracks)."""
    taken: set[str] = {p.name for p in folder.glob(f"{REDACTED_PREFIX}*")}
    manifest = folder / "manifest.json"
    if manifest.is_file():
        listed = json.loads(manifest.read_bytes())
        objects = [*listed.get("objects", []), *listed.get("removed", [])]  # (a removed copy's n stays taken)
        taken |= {str(o.get("name", "")).split("/", 1)[0] for o in objects}
    n = 1
    while f"{REDACTED_PREFIX}{n}" in taken:
        n += 1
    return n


def fill_from_copies(folder: Path) -> list[str]:
    """Audio tracks the manifest names whose file is gone from the folder (deleted after a redaction,
    transcripts.keep_original = false) copied back from their latest local redacted copy, so that a new
    redaction adds to the earlier ones; the names copied."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return []
    copied = []
    for track in json.loads(manifest.read_bytes()).get("tracks", []):
        name = str(track.get("file") or "")
        if not name or "/" in name or name.startswith(".") or (folder / name).exists():
            continue
        copies = [
            p
            for p in folder.glob(f"{REDACTED_PREFIX}*/{name}")
            if p.parent.name[len(REDACTED_PREFIX) :].isdigit()
        ]
        if copies:
            latest = max(copies, key=lambda p: int(p.parent.name[len(REDACTED_PREFIX) :]))
            shutil.copyfile(latest, folder / name)
            copied.append(name)
    return copied


def do_work(request: WorkRequest, settings: TranscriptSettings) -> WorkResult:
    """(worker process) See the module documentation. Raises WorkError."""
    import av  # noqa: PLC0415

    from postprocess.redact.audio import RedactError  # noqa: PLC0415
    from postprocess.redact.mask import mask_transcript  # noqa: PLC0415
    from postprocess.redact.recording import REDACTED_DIR, redact_recording  # noqa: PLC0415
    from postprocess.transcribe.engine import Engine  # noqa: PLC0415
    from postprocess.transcribe.models import TRANSCRIPT_JSON, RedactionInterval, TranscriptError  # noqa: PLC0415
    from postprocess.transcribe.recording import read_transcript, transcribe_recording, write_transcript  # noqa: PLC0415

    folder = request.folder
    result = WorkResult()
    try:
        previous = folder / TRANSCRIPT_JSON
        if request.transcribe:
            kept = read_transcript(previous).redactions if previous.is_file() else []
            engine = _engine_for(settings)
            assert isinstance(engine, Engine)
            transcript = transcribe_recording(folder, engine)
            if kept:  # never unmask what was redacted before
                transcript = mask_transcript(transcript, kept)
            paths = write_transcript(folder, transcript)
            result.transcript = [p.name for p in paths]
            result.model = transcript.model
            result.segments = len(transcript.segments)
            result.words = sum(len(s.words) for s in transcript.segments)
        if request.redact_auto or request.manual:
            fill_from_copies(folder)
            manual = [RedactionInterval.model_validate(i.model_dump()) for i in request.manual]
            report = redact_recording(folder, manual, auto=request.redact_auto)
            n = next_copy_number(folder)
            target = folder / f"{REDACTED_PREFIX}{n}"
            os.replace(folder / REDACTED_DIR, target)
            result.redacted = sorted(f"{target.name}/{p.name}" for p in target.iterdir() if p.is_file())
            result.redactions = [Interval.model_validate(r.model_dump()) for r in report.redactions]
            result.originals = [Path(t.file).name for t in report.tracks]
            for options in request.composites:
                try:
                    built = rebuild_composite(folder, target, result.originals, options, request.info)
                except WorkError as exc:  # the redacted tracks stand; the composite is reported
                    result.errors.append(str(exc))
                    continue
                result.redacted.append(built)
            result.redacted.sort()
    except (TranscriptError, RedactError) as exc:
        _undo(folder, request, result)
        raise WorkError(str(exc)) from None
    except av.error.FFmpegError as exc:  # a file that cannot be decoded: one line naming it
        _undo(folder, request, result)
        where = Path(exc.filename).name if getattr(exc, "filename", None) else folder.name
        raise WorkError(f"{where}: cannot decode it: {exc.strerror or exc}") from None
    return result


def _undo(folder: Path, request: WorkRequest, result: WorkResult) -> None:
    """A failed job leaves nothing half made: no partial copy, and no transcript it wrote unmasked when the
    redaction that was to mask it failed (the API would serve it from the folder)."""
    shutil.rmtree(folder / "redacted", ignore_errors=True)
    if request.redact_auto:
        for name in result.transcript:
            (folder / name).unlink(missing_ok=True)


def rebuild_composite(
    folder: Path, target: Path, redacted: list[str], options: CompositeOptions, info: RecordingInfo | None
) -> str:
    """(worker process) The composite `options.out` names built again from the redacted audio tracks (in
    `target`) and the other tracks as they are, into `target`; its name relative to `folder`."""
    from postprocess.composite import build_composite  # noqa: PLC0415

    assert options.out is not None
    view = target / ".view"
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir()
    try:
        for entry in folder.iterdir():
            if entry.name.startswith((REDACTED_PREFIX, ".", "composite")) or entry.name in ("redacted",):
                continue
            source = target / entry.name if entry.name in redacted else entry
            (view / entry.name).symlink_to(source.resolve())
        out = target / options.out.name
        try:
            build_composite(view, options.model_copy(update={"out": out}), info)
        except CompositeError as exc:
            raise WorkError(
                f"{options.out.name}: cannot build it again from the redacted tracks: {exc}"
            ) from None
    finally:
        shutil.rmtree(view, ignore_errors=True)
    return f"{target.name}/{out.name}"


def _init_transcript_worker(level: logs.LogLevel, log_format: logs.LogFormat, parent: int) -> None:
    """(worker process) Logging as the service's, and killed with the service: a `callvault serve`
    SIGKILLed mid-job (a queue worker whose job another worker takes up) leaves no process behind still
    transcribing into a folder that is about to go."""
    _init_worker(level, log_format)
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the service died before the call
                os._exit(1)


class Workers(Protocol):
    """Who does the jobs: TranscriptWorkers in this process's pool, or the job queue's worker nodes
    (recorder/jobs/transcripts.py)."""

    async def submit(self, request: WorkRequest, ticket: str | None = None) -> WorkResult: ...

    def shutdown(self) -> None: ...


class TranscriptWorkers:
    def __init__(self, settings: TranscriptSettings) -> None:
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.processes)
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn: a fresh interpreter, nothing inherited from the service's event loop or threads.
        return ProcessPoolExecutor(
            self.settings.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_transcript_worker,
            initargs=(*log_setup(), os.getpid()),
        )

    async def submit(self, request: WorkRequest, ticket: str | None = None) -> WorkResult:
        """Do the job in a worker process. Raises WorkError (also for a timeout or a worker that died).
        `ticket`: the Transcriber's job id (used by the queued kind, recorder/jobs/transcripts.py)."""
        async with self._slots:
            if self._pool is None:  # started on first use: no idle process while nothing is transcribed
                self._pool = self._new_pool()
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._pool, do_work, request, self.settings)
            try:
                async with asyncio.timeout(self.settings.timeout):
                    return await future
            except TimeoutError:
                log.error(
                    "transcript of %s exceeded %s s; restarting the pool",
                    request.folder,
                    self.settings.timeout,
                )
                self._restart()
                raise WorkError(f"not finished after {self.settings.timeout} s") from None
            except BrokenProcessPool:
                log.error("a transcript worker died on %s; restarting the pool", request.folder)
                self._restart()
                raise WorkError("the worker process died") from None
            except (WorkError, asyncio.CancelledError):
                raise
            except Exception as exc:  # raised by the job itself: the same again would fail the same way
                log.exception("transcript of %s failed", request.folder)
                raise WorkError(f"{type(exc).__name__}: {exc}") from None

    def _restart(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            _terminate(old)

    def shutdown(self) -> None:
        if self._pool is not None:
            _terminate(self._pool)
            self._pool = None
