"""A recording's transcript (GET /v1/recordings/{id}/transcript, JSON or WebVTT) and manual redaction (POST
/v1/recordings/{id}/redactions, admin): the service's Transcriber (recorder/transcripts/service.py) does
the redaction in a worker process, the same way as the automatic one. `attach` gives the Transcriber the
catalog's search index and the audit log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from recorder.api import examples
from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import RecordingStatus, TranscriptHit
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry
from recorder.recording import RecordingInfo
from recorder.transcripts.service import Transcriber
from recorder.transcripts.work import Interval
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


def transcriber_of(sinks: list[Any]) -> Transcriber | None:
    return next((s for s in sinks if isinstance(s, Transcriber)), None)


def attach(transcriber: Transcriber, ctx: ApiContext) -> None:
    """The Transcriber indexes transcripts in the catalog (q= search) and audits what it does."""

    async def index(recording_id: str, path: Path) -> None:
        def hits() -> list[TranscriptHit]:
            data = json.loads(path.read_bytes())
            return [
                TranscriptHit(speaker=s["speaker"], start=s["start"], end=s["end"], text=s["text"])
                for s in data.get("segments", [])
            ]

        found = await asyncio.to_thread(hits)
        await ctx.db.run(lambda: ctx.catalog.index_transcript(recording_id, found))

    async def audit(action: str, recording_id: str, outcome: str, detail: dict[str, Any]) -> None:
        await ctx.audit.append("callvault", None, action, recording_id, outcome, None, detail)

    transcriber.index = index
    transcriber.audit = audit


def register(reg: Registry, ctx: ApiContext) -> None:
    async def finished_folder(rid: str) -> tuple[Any, Path]:
        detail = await ctx.db.run(lambda: ctx.catalog.get(rid))
        if detail is None:
            raise ApiError(404, f"no recording {rid}", "not-found")
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(404, f"recording {rid} is deleted", "deleted")
        if ctx.live(rid) is not None:
            raise ApiError(409, f"recording {rid} is in progress", "in-progress")
        folder = await ctx.db.run(lambda: ctx.catalog.folder(rid))
        if folder is None or not await asyncio.to_thread(folder.is_dir):
            raise ApiError(409, f"recording {rid} has no local copy", "no-local-copy")
        return detail, folder

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
        errors=(404, 409),
        description="Who said what and when: segments with the speaker (participant id), start and end in"
        " seconds of the recording's timeline, confidence and word timings (format=json), or WebVTT"
        " cues (format=vtt). Masked where redactions were made ([redacted]). From the recording's local"
        " folder; 404 when it has no transcript (transcripts.enabled, the room's `transcribe`).",
    )
    async def recording_transcript(call: Call) -> web.StreamResponse:
        rid = call.path["recording_id"]
        fmt = call.query(TranscriptQuery).format
        call.detail = {"format": fmt}
        _, folder = await finished_folder(rid)
        path = folder / ("transcript.json" if fmt == "json" else "transcript.vtt")
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ApiError(404, f"recording {rid} has no transcript", "no-transcript") from None
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
        " manifest's next revision, with the masked transcript and redactions.json) in a worker process;"
        " redaction.finished announces it. The interval, its reason and who asked are in the audit log.",
    )
    async def redact(call: Call) -> RedactionAccepted:
        rid = call.path["recording_id"]
        body = call.body(RedactionRequest)
        call.detail = {"start": body.start, "end": body.end, "reason": body.reason}
        transcriber = transcriber_of(ctx.manager.sinks)
        if transcriber is None:
            raise ApiError(503, "this service does not redact (no transcripts worker)", "no-redaction")
        detail, folder = await finished_folder(rid)
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
