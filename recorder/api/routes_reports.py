"""The forensic report of a recording (postprocess/forensics/, the same as `callvault report`): GET
/v1/recordings/{id}/report, as HTML (default) or PDF. Made in a worker thread from the recording's local
folder and kept under `<data_dir>/reports/<id>/`; made again when the recording's manifest or summaries
are newer than the kept report.

On a fleet it stays on the API node, not the job queue: it reads only the recording's folder in the shared
`recordings/` (which API pods mount) and the catalog, needs no secret, and answers the request itself; a
worker would read the same folder, and the GET would become a job to poll (docs/fleet.md)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import RecordingStatus
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry

log = logging.getLogger(__name__)

REPORTERS = {Role.SUPERVISOR, Role.AUDITOR}


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["html", "pdf"] = "html"


def _fresh(report: Path, folder: Path) -> bool:
    if not report.is_file():
        return False
    made = report.stat().st_mtime
    return all(p.stat().st_mtime <= made for p in folder.glob("*.json"))


def register(reg: Registry, ctx: ApiContext) -> None:
    reports_dir = ctx.manager.recordings_dir.parent / "reports"
    locks: dict[str, asyncio.Lock] = {}

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
        " request (seconds for a long call) and kept until the recording changes.",
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
            html, pdf = out / f"{rid}-report.html", out / f"{rid}-report.pdf"
            if not (_fresh(html, folder) and _fresh(pdf, folder)):
                try:
                    from postprocess.forensics.report import make_report  # noqa: PLC0415 (optional extra)
                except ImportError as exc:
                    raise ApiError(
                        503, f"reports need the report extra: {exc}", "report-unavailable"
                    ) from exc
                try:
                    made = await asyncio.to_thread(make_report, folder, out)
                except (ValueError, OSError) as exc:
                    raise ApiError(409, f"no report for recording {rid}: {exc}", "not-a-recording") from exc
                if made.data.facts.recording_id != rid:  # a folder whose manifest names another id
                    raise ApiError(
                        409, f"recording {rid}'s folder holds {made.data.facts.recording_id}", "mismatch"
                    )
        path = pdf if fmt == "pdf" else html
        kind = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
        headers = {"Content-Type": kind, "Content-Disposition": f'inline; filename="{path.name}"'}
        return web.FileResponse(path, headers=headers)
