"""Export jobs (admin, auditor, supervisor): create one over the search filters, follow it, download its
evidence bundles; export schedules (admin): recurring exports by cron expression."""

from __future__ import annotations

from aiohttp import web

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.problems import ApiError
from recorder.api.registry import TAGS, Call, Registry
from recorder.lifecycle.exports import ExportError
from recorder.lifecycle.models import (
    ExportJobOut,
    ExportJobPage,
    ExportRequest,
    ScheduleList,
    ScheduleOut,
    ScheduleRequest,
)
from recorder.lifecycle.service import Lifecycle
from recorder.storage.base import StorageError

ADMIN: set[Role] = set()
EXPORTERS = {Role.AUDITOR, Role.SUPERVISOR}
DECRYPTERS = {Role.ADMIN, Role.AUDITOR}
"""Who may ask an export for decrypted originals (`decrypt`): plaintext leaves the service's custody."""
TAG = "exports"


def register(reg: Registry, ctx: ApiContext, lifecycle: Lifecycle) -> None:
    TAGS.setdefault(TAG, "Export jobs and schedules: evidence bundles of the recordings a filter selects.")
    runner = lifecycle.exports

    @reg.add(
        "POST",
        "/v1/exports",
        EXPORTERS,
        "Start an export job: one signed evidence bundle per recording the filter selects",
        TAG,
        "export.create",
        body=ExportRequest,
        response=ExportJobOut,
        status=202,
        errors=(409,),
    )
    async def create_export(call: Call) -> ExportJobOut:
        request = call.body(ExportRequest)
        if request.decrypt:
            call.detail = {"decrypt": True}
            if call.principal.role not in DECRYPTERS:
                raise ApiError(
                    403,
                    f"role {call.principal.role.value} may not export decrypted recordings (admin, auditor)",
                    "forbidden",
                )
        try:
            job = await runner.create(request, call.principal.name)
        except ExportError as exc:
            raise ApiError(409, str(exc), "export-refused") from exc
        call.target = job.job_id
        call.detail = {"recordings": job.total, "destination": request.destination.label()}
        if request.decrypt:
            call.detail["decrypt"] = True
        return job

    @reg.add("GET", "/v1/exports", EXPORTERS, "Export jobs, newest first", TAG, None, response=ExportJobPage)
    async def list_exports(call: Call) -> ExportJobPage:
        return ExportJobPage(jobs=await runner.jobs())

    @reg.add(
        "GET",
        "/v1/exports/{job_id}",
        EXPORTERS,
        "One export job: progress, bundles, result",
        TAG,
        None,
        response=ExportJobOut,
        errors=(404,),
    )
    async def get_export(call: Call) -> ExportJobOut:
        job = await runner.get(call.path["job_id"])
        if job is None:
            raise ApiError(404, f"no export job {call.path['job_id']}", "not-found")
        return job

    @reg.add(
        "GET",
        "/v1/exports/{job_id}/bundles/{recording_id}",
        EXPORTERS,
        "Download one recording's evidence bundle (a ZIP; check it with `callvault verify BUNDLE`)",
        TAG,
        "export.download",
        media_type="application/octet-stream",
        description="The ZIP is sent as application/octet-stream (a file to save, not to open).",
        errors=(404,),
    )
    async def download_bundle(call: Call) -> web.StreamResponse:
        job_id, rid = call.path["job_id"], call.path["recording_id"]
        call.target = f"{job_id}/{rid}"
        job = await runner.get(job_id)
        if job is None or not any(b.recording_id == rid for b in job.bundles):
            raise ApiError(404, f"export job {job_id} has no bundle of recording {rid}", "not-found")
        path = runner.bundle_path(job_id, rid)
        if path is None:
            raise ApiError(404, f"the bundle of {rid} is not kept here (sent, or expired)", "not-found")
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f'attachment; filename="{rid}.zip"',
            },
        )

    @reg.add(
        "POST",
        "/v1/export-schedules",
        ADMIN,
        "Schedule a recurring export (cron expression, UTC)",
        TAG,
        "export.schedule_create",
        body=ScheduleRequest,
        response=ScheduleOut,
        status=201,
        errors=(409,),
    )
    async def create_export_schedule(call: Call) -> ScheduleOut:
        request = call.body(ScheduleRequest)
        try:
            found = await runner.add_schedule(request, call.principal.name)
        except ValueError as exc:
            raise ApiError(422, f"body.cron: {exc}", "invalid-request") from exc
        except (ExportError, StorageError) as exc:
            raise ApiError(409, str(exc), "export-refused") from exc
        call.target = found.schedule_id
        call.detail = {"cron": found.cron}
        return found

    @reg.add("GET", "/v1/export-schedules", ADMIN, "Export schedules", TAG, None, response=ScheduleList)
    async def list_export_schedules(call: Call) -> ScheduleList:
        return ScheduleList(schedules=await runner.schedules())

    @reg.add(
        "DELETE",
        "/v1/export-schedules/{schedule_id}",
        ADMIN,
        "Remove an export schedule (jobs it started are kept)",
        TAG,
        "export.schedule_delete",
        response=ScheduleList,
        errors=(404,),
    )
    async def delete_export_schedule(call: Call) -> ScheduleList:
        if not await runner.delete_schedule(call.path["schedule_id"]):
            raise ApiError(404, f"no export schedule {call.path['schedule_id']}", "not-found")
        return ScheduleList(schedules=await runner.schedules())
