"""A recording's transcript (GET /v1/recordings/{id}/transcript, JSON or WebVTT) and manual redaction (POST
/v1/recordings/{id}/redactions, admin): the service's Transcriber (recorder/transcripts/service.py) does
the redaction in a worker process, the same way as the automatic one. `attach` gives the Transcriber the
catalog's search index and the audit log."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.files import RecordingFiles
from recorder.api.models import RecordingStatus, TranscriptHit
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry
from recorder.lifecycle import catalog as lc
from recorder.lifecycle.rules import kind_of
from recorder.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest
from recorder.recording import RecordingInfo
from recorder.storage import StorageError
from recorder.transcripts.service import Transcriber
from recorder.transcripts.work import REDACTED_PREFIX, Interval
from recorder.webhooks import examples as hooks

TAG = "recordings"
READERS = {Role.SUPERVISOR}
"""Who may read a transcript: who may play the recording (GET .../file)."""
MAX_REDACTION = 6 * 3600.0
VTT_TYPE = "text/vtt"


class TranscriptQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(default="json", pattern="^(json|vtt)$", description="json (default) or vtt.")


class RedactionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(ge=0.0, le=MAX_REDACTION, description="Seconds on the recording's timeline.")
    end: float = Field(gt=0.0, le=MAX_REDACTION, description="Seconds on the recording's timeline.")
    reason: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Why (kept in the manifest, the audit log and redaction.finished).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RedactionRequest:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class RedactionAccepted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_id: str
    job_id: str = Field(description="The redaction job; redaction.finished announces its result.")
    redaction: Interval


examples.BODIES[RedactionRequest] = RedactionRequest(start=61.5, end=78.0, reason="customer read a card")
examples.BODIES[RedactionAccepted] = RedactionAccepted(
    recording_id=hooks.RECORDING_ID,
    job_id=f"{hooks.RECORDING_ID}.redaction-1780000000000",
    redaction=Interval(start=61.5, end=78.0, reason="customer read a card", rule="manual"),
)
examples.TEXT.setdefault(
    VTT_TYPE, "WEBVTT\n\n00:00:03.120 --> 00:00:05.400\n<v 1002>My card number is [redacted]\n"
)
examples.TEXT.setdefault(
    "application/json", '{"version": 1, "recording": "...", "segments": [{"speaker": "1002", "start": 3.12}]}'
)


def transcript_bytes(files: RecordingFiles, name: str) -> bytes | None:
    """(worker thread) The transcript file from the local folder (masked in place by a later redaction),
    else from the store (decrypted with the playback identity when it is encrypted); None: there is none
    (or an encrypted one without a playback identity)."""
    local = files.local_path(name)
    if local is not None:
        return local.read_bytes()
    prefix = files.prefix()
    if prefix is None or files.storage is None:
        return None
    try:
        manifest = files.manifest()
        if manifest is not None and manifest.object(name) is None:
            # deleted with the unredacted originals (transcripts.keep_original): the latest masked copy
            name = latest_copy(manifest, name) or name
        sealed = files.encrypted_object(name)
        if sealed is not None:
            if not files.storage.playback or sealed.plaintext_size is None:
                return None
            return b"".join(files.decrypted(sealed, 0, sealed.plaintext_size - 1))
        if name not in files.stored():
            return None
        return files.storage.store.get_bytes(prefix + name)
    except StorageError as exc:
        raise ApiError(503, f"the store cannot be read now: {exc}", "storage-unavailable") from exc


def latest_copy(manifest: Manifest, name: str) -> str | None:
    """`redacted-<n>/name` of the highest n the manifest lists, None when there is none."""
    best: tuple[int, str] | None = None
    for obj in manifest.objects:
        top, _, rest = obj.name.partition("/")
        if rest == name and top.startswith(REDACTED_PREFIX) and top[len(REDACTED_PREFIX) :].isdigit():
            n = int(top[len(REDACTED_PREFIX) :])
            if best is None or n > best[0]:
                best = (n, obj.name)
    return best[1] if best is not None else None


def _wanted_for_redaction(name: str) -> bool:
    """What a redaction reads: the top-level files but video tracks and composites (and their folders:
    segments, captures, earlier redacted copies)."""
    return "/" not in name and "-video-" not in name and not name.startswith("composite")


def restore(files: RecordingFiles, target: Path) -> bool:
    """(worker thread) The recording's audio tracks, summaries, transcript and signed manifest from the
    store into `target` (decrypted with the playback identity when encrypted); False: not stored, or
    encrypted without a playback identity. A track whose original was deleted after a redaction
    (transcripts.keep_original = false) is restored from its latest redacted copy, under its own name: a
    new redaction then adds to the earlier ones."""
    prefix = files.prefix()
    manifest = files.manifest()
    if prefix is None or files.storage is None or manifest is None:
        return False
    store = files.storage.store
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for name in (MANIFEST_NAME, SIGNATURE_NAME):
            (partial / name).write_bytes(store.get_bytes(prefix + name))
        wanted = {o.name: o for o in manifest.objects if _wanted_for_redaction(o.name)}
        for track in manifest.tracks:
            if track.file and "/" not in track.file and track.file not in wanted:
                copy = latest_copy(manifest, track.file)
                copied = manifest.object(copy) if copy is not None else None
                if copied is not None:
                    wanted[track.file] = copied
        for name, obj in wanted.items():
            if name in (MANIFEST_NAME, SIGNATURE_NAME):
                continue
            if obj.encryption is not None:
                if not files.storage.playback or obj.plaintext_size is None:
                    return False
                with (partial / name).open("wb") as out:
                    for chunk in files.decrypted(obj, 0, max(0, obj.plaintext_size - 1)):
                        out.write(chunk)
            else:
                store.download(prefix + obj.name, partial / name)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    except StorageError as exc:
        raise ApiError(503, f"the store cannot be read now: {exc}", "storage-unavailable") from exc
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


def transcriber_of(sinks: list[Any]) -> Transcriber | None:
    return next((s for s in sinks if isinstance(s, Transcriber)), None)


def attach(transcriber: Transcriber, ctx: ApiContext) -> None:
    """The Transcriber indexes transcripts in the catalog (q= search) and audits what it does."""

    async def index(recording_id: str, path: Path) -> None:
        def hits() -> list[TranscriptHit] | None:
            if not path.is_file():  # a manual redaction of a recording without a transcript
                return None
            data = json.loads(path.read_bytes())
            return [
                TranscriptHit(speaker=s["speaker"], start=s["start"], end=s["end"], text=s["text"])
                for s in data.get("segments", [])
            ]

        found = await asyncio.to_thread(hits)
        if found is None:
            return
        await ctx.db.run(lambda: ctx.catalog.index_transcript(recording_id, found))

    async def audit(action: str, recording_id: str, outcome: str, detail: dict[str, Any]) -> None:
        await ctx.audit.append("callvault", None, action, recording_id, outcome, None, detail)

    async def protected(recording_id: str) -> str | None:
        detail = await ctx.db.run(lambda: ctx.catalog.get(recording_id))
        if detail is None:
            return None
        if detail.legal_hold:
            return "the recording is under legal hold"
        until = detail.retention_until
        if until is not None and until.timestamp() > time.time():
            return f"the recording is under retention until {until.isoformat()}"
        return None

    async def forget(recording_id: str, names: list[str], rule: str, at: float) -> None:
        def write() -> None:
            c = ctx.db.connection
            c.execute("BEGIN IMMEDIATE")
            try:
                for name in names:
                    lc.object_deleted(c, recording_id, name, str(kind_of(name)), rule, at)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        await ctx.db.run(write)

    transcriber.index = index
    transcriber.audit = audit
    transcriber.protected = protected
    transcriber.forget = forget


def register(reg: Registry, ctx: ApiContext) -> None:
    restored_dir = ctx.manager.recordings_dir.parent / "transcripts" / "restored"

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/transcript",
        READERS,
        "Transcript of a recording (JSON or WebVTT)",
        TAG,
        "recording.transcript",
        query=TranscriptQuery,
        media_type="application/json",
        more_media_types=(VTT_TYPE,),
        errors=(404, 409, 503),
        description="Who said what and when: segments with the speaker (participant id), start and end in"
        " seconds of the recording's timeline, confidence and word timings (format=json), or WebVTT"
        " cues (format=vtt). Masked where redactions were made ([redacted]). From the recording's local"
        " folder, else the store (an encrypted one decrypted with the playback identity); 404 when it has"
        " no transcript (transcripts.enabled, the room's `transcribe`).",
    )
    async def recording_transcript(call: Call) -> web.StreamResponse:
        rid = call.path["recording_id"]
        fmt = call.query(TranscriptQuery).format
        call.detail = {"format": fmt}
        detail = await ctx.db.run(lambda: ctx.catalog.get(rid))
        if detail is None or detail.status is RecordingStatus.DELETED:
            raise ApiError(404, f"no recording {rid}", "not-found")
        if ctx.live(rid) is not None:
            raise ApiError(409, f"recording {rid} is in progress", "in-progress")
        files = await ctx.files(rid)
        name = "transcript.json" if fmt == "json" else "transcript.vtt"
        data = await asyncio.to_thread(transcript_bytes, files, name)
        if data is None:
            raise ApiError(404, f"recording {rid} has no transcript", "no-transcript")
        kind = "application/json" if fmt == "json" else "text/vtt; charset=utf-8"
        return web.Response(body=data, headers={"Content-Type": kind, "Cache-Control": "no-store"})

    @reg.add(
        "POST",
        "/v1/recordings/{recording_id}/redactions",
        set(),
        "Redact an interval of a finished recording (admin)",
        TAG,
        "recording.redact",
        body=RedactionRequest,
        response=RedactionAccepted,
        status=202,
        errors=(404, 409, 503),
        description="Silences the interval in a redacted copy of every audio track (`redacted-<n>/` in the"
        " manifest's next revision, with the masked transcript and redactions.json) in a worker process"
        " (from the local folder, else from audio tracks restored from the store: the newest redacted copy"
        " of a track whose original was deleted; 409 no-local-copy when none can be, encrypted without a"
        " playback identity); redaction.finished announces it, redaction.failed when it cannot be made."
        " With transcripts.keep_original = false the originals it replaces are deleted (a manifest"
        " revision lists them, recording.deleted). The interval, its reason and who asked are in the audit"
        " log.",
    )
    async def redact(call: Call) -> RedactionAccepted:
        rid = call.path["recording_id"]
        body = call.body(RedactionRequest)
        call.detail = {"start": body.start, "end": body.end, "reason": body.reason}
        detail = await ctx.db.run(lambda: ctx.catalog.get(rid))
        if detail is None or detail.status is RecordingStatus.DELETED:
            raise ApiError(404, f"no recording {rid}", "not-found")
        if ctx.live(rid) is not None:
            raise ApiError(409, f"recording {rid} is in progress", "in-progress")
        transcriber = transcriber_of(ctx.manager.sinks)
        if transcriber is None:
            raise ApiError(503, "this service does not redact (no transcripts worker)", "no-redaction")
        async with transcriber.reserved(rid):  # the folder stays while the job is queued
            files = await ctx.files(rid)
            folder = files.folder
            if not await asyncio.to_thread(folder.is_dir):  # stored, local copy gone: restored for the job
                folder = restored_dir / rid  # rid passed the API's id pattern (recorder/names.py)
                if not await asyncio.to_thread(folder.is_dir) and not await asyncio.to_thread(
                    restore, files, folder
                ):  # (one restored before, and still there, is current: its revisions are written into it)
                    raise ApiError(
                        409, f"recording {rid} has no local copy and none can be restored", "no-local-copy"
                    )
            info = RecordingInfo(
                recording_id=rid,
                folder=folder,
                room_id=detail.room_id,
                call_id=detail.call_id,
                started_at=detail.started_at.timestamp(),
            )
            interval = Interval(start=body.start, end=body.end, reason=body.reason, rule="manual")
            job = await transcriber.redact(info, [interval], by=call.principal.name)
        call.detail["job"] = job.id
        return RedactionAccepted(recording_id=rid, job_id=job.id, redaction=interval)
