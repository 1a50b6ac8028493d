"""The forensic report of a recording (postprocess/forensics/, the same as `callvault report`): GET
/v1/recordings/{id}/report, as HTML (default) or PDF. Made from the recording's folder and kept under
`<data_dir>/reports/<id>/`; made again when the recording's manifest or summaries are newer than the kept
report. Each build writes into a hidden folder of its own attempt and renames the files into place, so a
reader never sees half a report.

A single node (SQLite, or a node with the worker role) builds it in a worker thread. An API node of a
fleet without the worker role (a job queue on the PostgreSQL catalog) queues it instead (queue `reports`,
recorder/jobs/reports.py): a report takes seconds of CPU for a long call, which belongs on a worker. The
GET waits for the job (jobs.report_wait_seconds) and serves the file the worker left in the shared `reports/`
folder; when the job is not done by then, 503 with Retry-After (the job goes on; the GET again waits for
the same job or finds the file).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path
from typing import Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import RecordingStatus
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry

log = logging.getLogger(__name__)

REPORTERS = {Role.SUPERVISOR, Role.AUDITOR}
RETRY_AFTER = 30
"""Seconds a client is told to wait when a queued report is not built within the GET's wait."""


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["html", "pdf"] = "html"


class ReportError(ValueError):
    """The recording's folder gives no report (not a recording, or one of another id)."""


class ReportQueue(Protocol):
    """Reports built by the workers of a fleet (recorder/jobs/reports.py ReportDispatch)."""

    async def build(self, recording_id: str) -> str | None:
        """Have a worker build the recording's report into the shared `reports/` folder; None once built,
        else why not. TimeoutError when it is not built within the wait (the job goes on)."""
        ...


def report_files(out: Path, recording_id: str) -> tuple[Path, Path]:
    return out / f"{recording_id}-report.html", out / f"{recording_id}-report.pdf"


def fresh(out: Path, recording_id: str, folder: Path) -> bool:
    """Whether both kept reports are newer than every JSON file of the recording's folder."""
    files = report_files(out, recording_id)
    if not all(f.is_file() for f in files):
        return False
    made = min(f.stat().st_mtime for f in files)
    return all(p.stat().st_mtime <= made for p in folder.glob("*.json"))


def build_report(folder: Path, recording_id: str, out: Path, attempt: str) -> None:
    """(worker thread) Make the report of the recording in `folder` in `out/.<attempt>.tmp/` and rename
    its files into `out` (the PDF first: the HTML's arrival is when both are there). ReportError when the
    folder is not that recording's; ImportError without the report extra."""
    from postprocess.forensics.report import make_report  # noqa: PLC0415 (optional extra)

    work = out / f".{attempt}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    try:
        try:
            made = make_report(folder, work)
        except (ValueError, OSError) as exc:
            raise ReportError(str(exc)) from exc
        if made.data.facts.recording_id != recording_id:  # a folder whose manifest names another id
            raise ReportError(f"the folder holds {made.data.facts.recording_id}")
        html, pdf = report_files(out, recording_id)
        assert made.pdf is not None
        os.replace(made.pdf, pdf)
        os.replace(made.html, html)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def register(reg: Registry, ctx: ApiContext) -> None:
    reports_dir = ctx.manager.recordings_dir.parent / "reports"
    locks: dict[str, asyncio.Lock] = {}

    async def in_process(rid: str, folder: Path, out: Path) -> None:
        try:
            await asyncio.to_thread(build_report, folder, rid, out, f"api-{os.getpid()}")
        except ImportError as exc:
            raise ApiError(503, f"reports need the report extra: {exc}", "report-unavailable") from exc
        except ReportError as exc:
            raise ApiError(409, f"no report for recording {rid}: {exc}", "not-a-recording") from exc

    async def queued(queue: ReportQueue, rid: str) -> None:
        try:
            why = await queue.build(rid)
        except TimeoutError as exc:
            raise ApiError(
                503,
                f"the report of recording {rid} is being made by a worker: ask again in {RETRY_AFTER} s",
                "report-pending",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from exc
        if why is not None:
            raise ApiError(409, f"no report for recording {rid}: {why}", "not-a-recording")

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/report",
        REPORTERS,
        "Forensic report of a recording (HTML or PDF)",
        "recordings",
        "recording.report",
        query=ReportQuery,
        media_type="text/html",
        more_media_types=("application/pdf",),
        errors=(404, 409, 503),
        description="Summary in plain words, integrity verdict (manifest, hash chains, signature), timeline"
        " of joins, leaves, pauses and gaps, per-track bitrate, loss, RFC 3550 jitter, frame rate, keyframes"
        " (from the raw capture when there is one), A/V sync and sender clock drift, what was lost and"
        " where. Self-contained (no external asset). Made from the recording's local folder on first"
        " request (seconds for a long call) and kept until the recording changes. On a fleet whose API"
        " nodes have no worker role, a worker makes it (queue `reports`) while the request waits"
        " (jobs.report_wait_seconds, 60 s); not made by then: 503 `report-pending` with Retry-After"
        " (the job goes on: ask again).",
    )
    async def recording_report(call: Call) -> web.StreamResponse:
        rid = call.path["recording_id"]
        fmt = call.query(ReportQuery).format
        call.detail = {"format": fmt}
        detail = await ctx.db.run(lambda: ctx.catalog.get(rid))
        if detail is None:
            raise ApiError(404, f"no recording {rid}", "not-found")
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(404, f"recording {rid} is deleted", "deleted")
        if ctx.live(rid) is not None:
            raise ApiError(
                409, f"recording {rid} is in progress: its report comes when it finishes", "in-progress"
            )
        files = await ctx.files(rid)
        folder = files.folder
        if not folder.is_dir():
            raise ApiError(409, f"recording {rid} has no local copy to report on", "no-local-copy")
        out = reports_dir / rid  # rid passed the API's id pattern (recorder/names.py)
        lock = locks.setdefault(rid, asyncio.Lock())
        async with lock:
            if not await asyncio.to_thread(fresh, out, rid, folder):
                if ctx.reports is not None:
                    await queued(ctx.reports, rid)
                else:
                    await in_process(rid, folder, out)
        html, pdf = report_files(out, rid)
        path = pdf if fmt == "pdf" else html
        kind = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
        headers = {"Content-Type": kind, "Content-Disposition": f'inline; filename="{path.name}"'}
        return web.FileResponse(path, headers=headers)
