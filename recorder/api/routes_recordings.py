"""Recordings: search, view (with manifest), metadata, pause/resume, download links and files,
verification, legal hold and deletion."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from recorder.api.auth import Role
from recorder.api.context import ApiContext
from recorder.api.models import (
    AuditPage,
    Deleted,
    FileLink,
    FileLinks,
    LegalHold,
    MetadataPatch,
    ParticipantPatch,
    PauseRequest,
    PauseState,
    RecordingDetail,
    RecordingPage,
    RecordingStatus,
    SearchQuery,
    TrailQuery,
    VerifyProblemOut,
    VerifyResult,
)
from recorder.api.playback import ENCRYPTION_HEADER, encrypted_objects, stream_plaintext
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry
from recorder.api.times import utc
from recorder.manifest import content_type_for
from recorder.storage.base import StorageError, StorageRefusedError

log = logging.getLogger(__name__)

OPERATOR = {Role.OPERATOR}
SUPERVISOR = {Role.SUPERVISOR}
AUDITOR = {Role.AUDITOR}
ADMIN: set[Role] = set()
TAG = "recordings"


FILE_TYPES = (
    "video/webm",
    "video/x-matroska",
    "audio/x-matroska",
    "video/mp4",
    "audio/mp4",
    "application/json",
    "text/plain",
)
"""Content types of a recording's files (by extension, as the manifest gives them; others are
application/octet-stream)."""


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(
            pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}){0,3}$"
        ),
    ]


def register(reg: Registry, ctx: ApiContext) -> None:
    db, catalog = ctx.db, ctx.catalog

    async def detail_of(recording_id: str) -> RecordingDetail:
        found = await db.run(lambda: catalog.get(recording_id))
        if found is None:
            raise ApiError(404, f"no recording {recording_id}", "not-found")
        return found

    @reg.add(
        "GET",
        "/v1/recordings",
        SUPERVISOR,
        "Search recordings",
        TAG,
        "recording.search",
        query=SearchQuery,
        response=RecordingPage,
    )
    async def search_recordings(call: Call) -> RecordingPage:
        q = call.query(SearchQuery)
        call.detail = {"query": call.request.query_string[:500]}
        await ctx.sync_live()
        page = await db.run(lambda: catalog.search(q))
        call.detail["results"] = len(page.items)
        return page

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}",
        SUPERVISOR,
        "One recording with its manifest",
        TAG,
        "recording.view",
        response=RecordingDetail,
        errors=(404,),
    )
    async def get_recording(call: Call) -> RecordingDetail:
        await ctx.sync_live()
        detail = await detail_of(call.path["recording_id"])
        files = await ctx.files(detail.recording_id)
        if detail.status is not RecordingStatus.DELETED:
            detail.manifest = await asyncio.to_thread(files.manifest)
        return detail

    @reg.add(
        "PATCH",
        "/v1/recordings/{recording_id}",
        OPERATOR,
        "Set a recording's tags and call id",
        TAG,
        "recording.metadata",
        body=MetadataPatch,
        response=RecordingDetail,
        errors=(404, 409),
    )
    async def patch_recording(call: Call) -> RecordingDetail:
        rid = call.path["recording_id"]
        patch = call.body(MetadataPatch)
        detail = await detail_of(rid)
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(409, f"recording {rid} is deleted", "deleted")
        live = ctx.live(rid)
        if live is not None:
            info = live[1].info
            _apply(info.metadata, patch.metadata)
            if patch.call_id is not None:
                info.call_id = patch.call_id

        def write() -> None:
            catalog.patch_tags(rid, "", patch.metadata)
            if patch.call_id is not None:
                catalog.set_call_id(rid, patch.call_id)

        await db.run(write)
        call.detail = {"tags": ",".join(sorted(patch.metadata)), "call_id": patch.call_id}
        return await detail_of(rid)

    @reg.add(
        "PATCH",
        "/v1/recordings/{recording_id}/participants/{participant_id}",
        OPERATOR,
        "Set a participant's tags",
        TAG,
        "participant.metadata",
        body=ParticipantPatch,
        response=RecordingDetail,
        errors=(404, 409),
    )
    async def patch_participant(call: Call) -> RecordingDetail:
        rid, pid = call.path["recording_id"], call.path["participant_id"]
        patch = call.body(ParticipantPatch)
        call.target = f"{rid}/{pid}"
        await ctx.sync_live()
        detail = await detail_of(rid)
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(409, f"recording {rid} is deleted", "deleted")
        if not any(p.id == pid for p in detail.participants):
            raise ApiError(404, f"recording {rid} has no participant {pid}", "not-found")
        live = ctx.live(rid)
        if live is not None:
            for p in live[1].info.participants:
                if p.id == pid:
                    _apply(p.metadata, patch.metadata)
        await db.run(lambda: catalog.patch_tags(rid, pid, patch.metadata))
        call.detail = {"tags": ",".join(sorted(patch.metadata))}
        return await detail_of(rid)

    def pause_route(participant: bool, pause: bool) -> None:
        path = "/v1/recordings/{recording_id}" + ("/participants/{participant_id}" if participant else "")
        verb = "pause" if pause else "resume"
        who = "one participant of a recording" if participant else "a recording"

        async def handler(call: Call) -> PauseState:
            rid = call.path["recording_id"]
            pid = call.path.get("participant_id")
            if ctx.fleet_rooms is not None and ctx.live(rid) is None:  # a fleet: on its recorder
                call.target = rid if pid is None else f"{rid}/{pid}"
                reason = call.body(PauseRequest).reason if pause else None
                if reason is not None:
                    call.detail["reason"] = reason
                if not await ctx.fleet_rooms.pause(call, rid, pid, pause, reason):
                    raise ApiError(
                        404, f"recording {rid} has no participant {pid} being recorded", "not-found"
                    )
                return PauseState(recording_id=rid, participant=pid, paused=pause)
            room, _ = ctx.require_live(rid)
            call.target = rid if pid is None else f"{rid}/{pid}"
            try:
                if pause:
                    reason = call.body(PauseRequest).reason
                    call.detail = {"reason": reason, "room": room}
                    done = ctx.manager.pause(room, pid, by=call.principal.name, reason=reason)
                else:
                    call.detail = {"room": room}
                    done = ctx.manager.resume(room, pid)
            except Exception as exc:
                # The manager switches ingest first, then tells its sinks: a sink that fails to hear it
                # (webhook not queued) does not undo the pause, which is what protects the customer.
                log.exception("recording %s: a sink failed to hear the %s", rid, verb)
                call.detail["sink_error"] = f"{type(exc).__name__}: {exc}"[:300]
                done = ctx.live(rid) is not None
            if not done:
                raise ApiError(404, f"recording {rid} has no participant {pid} being recorded", "not-found")
            return PauseState(recording_id=rid, participant=pid, paused=pause)

        handler.__name__ = f"{verb}_{'participant' if participant else 'recording'}"
        summary = f"{verb.capitalize()} {who}" + (
            ": its packets are dropped at ingest until resumed" if pause else " (a keyframe is requested)"
        )
        reg.add(
            "POST",
            f"{path}/{verb}",
            OPERATOR,
            summary,
            TAG,
            f"recording.{verb}",
            body=PauseRequest if pause else None,
            response=PauseState,
            errors=(404, 503, 504),
        )(handler)

    for participant in (False, True):
        for pause in (True, False):
            pause_route(participant, pause)

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/links",
        SUPERVISOR,
        "Download links of its files",
        TAG,
        "recording.download",
        response=FileLinks,
        errors=(404, 409, 503),
    )
    async def recording_links(call: Call) -> FileLinks:
        rid = call.path["recording_id"]
        detail = await detail_of(rid)
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(409, f"recording {rid} is deleted", "deleted")
        files = await ctx.files(rid)
        expires = timedelta(seconds=ctx.settings.link_expiry_seconds)

        def links() -> list[FileLink]:
            stored = files.stored()
            if stored:
                until = time.time() + expires.total_seconds()
                sealed = encrypted_objects(files)
                playback = files.storage is not None and bool(files.storage.playback)
                found = []
                for n, stored_size in sorted(stored.items()):
                    obj = sealed.get(n)
                    if obj is not None and playback:  # decrypted by this API for the caller (audited)
                        api_url = f"/v1/recordings/{rid}/file?name={obj.name}"
                        plain = obj.plaintext_size
                        found.append(FileLink(name=obj.name, size=plain, url=api_url, presigned=False))
                    elif (presigned := files.presign(n, expires)) is not None:
                        found.append(
                            FileLink(
                                name=n,
                                size=stored_size,
                                url=presigned,
                                presigned=True,
                                expires_at=utc(until),
                                encryption="age" if obj else None,
                            )
                        )
                return found
            base = f"/v1/recordings/{rid}/file?name="
            return [
                FileLink(name=n, size=size, url=base + n, presigned=False)
                for n, size in sorted(files.local().items())
            ]

        try:
            found = await asyncio.to_thread(links)
        except StorageError as exc:
            raise ApiError(503, f"the store cannot presign links now: {exc}", "storage-unavailable") from exc
        call.detail = {"files": len(found), "presigned": any(f.presigned for f in found)}
        return FileLinks(recording_id=rid, files=found)

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/file",
        SUPERVISOR,
        "Download or play one file of a recording (redirects to the store when it is stored)",
        TAG,
        "recording.download",
        query=FileQuery,
        media_type="application/octet-stream",
        more_media_types=FILE_TYPES,
        redirect="The file is in the store: a presigned URL to it, valid api.link_expiry_seconds.",
        errors=(404, 416),
        description="From the local folder while the recording has one (the file's own content type),"
        " else a 307 to a presigned URL of the store. An encrypted recording's file (by its name or its"
        " stored name '<name>.age'): with a playback identity configured (archive.encryption), its"
        " plaintext decrypted on the fly (Range supported, header X-CallVault-Decrypted: age, audited"
        " with decrypted: true); without one, a 307 to the stored ciphertext with the header"
        " X-CallVault-Encryption: age.",
    )
    async def recording_file(call: Call) -> web.StreamResponse:
        rid = call.path["recording_id"]
        name = call.query(FileQuery).name
        call.detail = {"file": name}
        detail = await detail_of(rid)
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(404, f"recording {rid} is deleted", "deleted")
        files = await ctx.files(rid)
        path = await asyncio.to_thread(files.local_path, name)
        if path is not None:
            headers = {
                "Content-Type": content_type_for(path.name),
                "Content-Disposition": f'inline; filename="{path.name}"',
            }
            return web.FileResponse(path, headers=headers)
        sealed = await asyncio.to_thread(files.encrypted_object, name)
        if sealed is not None:
            call.detail = {"file": sealed.name, "encrypted": True}
            if files.storage is not None and files.storage.playback:
                call.detail["decrypted"] = True
                return await stream_plaintext(call.request, files, sealed)
            name = sealed.stored_name  # no playback identity: the ciphertext, saying so
        stored = await asyncio.to_thread(files.stored)
        if name in stored:
            expires = timedelta(seconds=ctx.settings.link_expiry_seconds)
            url = await asyncio.to_thread(files.presign, name, expires)
            if url is not None:
                raise web.HTTPTemporaryRedirect(url, headers={ENCRYPTION_HEADER: "age"} if sealed else {})
        raise ApiError(404, f"recording {rid} has no file {name}", "not-found")

    @reg.add(
        "GET",
        "/v1/recordings/{recording_id}/audit",
        SUPERVISOR | AUDITOR,
        "The audit trail of one recording",
        TAG,
        "recording.audit_trail",
        query=TrailQuery,
        response=AuditPage,
        errors=(404,),
    )
    async def recording_audit_trail(call: Call) -> AuditPage:
        """Entries whose target is this recording (views, plays, downloads, verifications, holds...),
        oldest first: what a supervisor who may play it may also read; the whole log stays auditor-only."""
        rid = call.path["recording_id"]
        q = call.query(TrailQuery)
        await detail_of(rid)
        entries = await ctx.audit.entries(after=q.after, limit=q.limit, target=rid)
        call.detail = {"after": q.after, "entries": len(entries)}
        return AuditPage(entries=entries, next_after=entries[-1].seq if len(entries) == q.limit else None)

    @reg.add(
        "POST",
        "/v1/recordings/{recording_id}/verify",
        SUPERVISOR | AUDITOR,  # a QA supervisor checks that what they review is what was recorded
        "Verify a recording against its signed manifest",
        TAG,
        "recording.verify",
        response=VerifyResult,
        errors=(404, 409, 503),
    )
    async def verify_recording(call: Call) -> VerifyResult:
        rid = call.path["recording_id"]
        await detail_of(rid)
        files = await ctx.files(rid)
        try:
            report = await asyncio.to_thread(files.verify)
        except StorageError as exc:
            raise ApiError(503, f"the store cannot be read now: {exc}", "storage-unavailable") from exc
        if report is None:
            raise ApiError(409, f"recording {rid} has no manifest (yet)", "no-manifest")
        call.detail = {"ok": report.ok, "problems": len(report.problems)}
        return VerifyResult(
            recording_id=rid,
            target=report.target,
            ok=report.ok,
            objects_checked=report.objects_checked,
            key_id=report.key_id,
            problems=[
                VerifyProblemOut(kind=p.kind.value, name=p.name, detail=p.detail) for p in report.problems
            ],
        )

    @reg.add(
        "PUT",
        "/v1/recordings/{recording_id}/legal-hold",
        ADMIN,
        "Place or lift a legal hold",
        TAG,
        "recording.legal_hold",
        body=LegalHold,
        response=RecordingDetail,
        errors=(404,),
    )
    async def set_legal_hold(call: Call) -> RecordingDetail:
        rid = call.path["recording_id"]
        hold = call.body(LegalHold)
        await detail_of(rid)
        await db.run(lambda: catalog.set_legal_hold(rid, hold.hold, hold.reason))
        call.detail = {"hold": hold.hold, "reason": hold.reason}
        return await detail_of(rid)

    @reg.add(
        "DELETE",
        "/v1/recordings/{recording_id}",
        ADMIN,
        "Delete a recording's files (never under legal hold or retention); the catalog keeps it",
        TAG,
        "recording.delete",
        response=Deleted,
        errors=(404, 409, 503),
    )
    async def delete_recording(call: Call) -> Deleted:
        rid = call.path["recording_id"]
        detail = await detail_of(rid)
        if detail.status is RecordingStatus.DELETED:
            raise ApiError(409, f"recording {rid} is already deleted", "deleted")
        if ctx.live(rid) is not None or detail.status in (RecordingStatus.RECORDING, RecordingStatus.PAUSED):
            raise ApiError(409, f"recording {rid} is in progress", "in-progress")
        if detail.legal_hold:
            raise ApiError(409, f"recording {rid} is under legal hold", "legal-hold")
        until = detail.retention_until
        if until is not None and until.timestamp() > time.time():
            raise ApiError(409, f"recording {rid} is under retention until {until.isoformat()}", "retention")
        files = await ctx.files(rid)
        recordings_dir = ctx.manager.recordings_dir.resolve()
        if files.folder.exists() and recordings_dir not in files.folder.resolve().parents:
            raise ApiError(409, f"recording {rid}'s folder is outside the data folder", "foreign-folder")
        locked = await asyncio.to_thread(files.locked_until)
        if locked is not None:
            raise ApiError(
                409, f"recording {rid} is under object lock until {locked.isoformat()}", "retention"
            )
        try:
            count = await asyncio.to_thread(files.delete)
        except StorageRefusedError as exc:
            raise ApiError(409, f"the store refused the deletion: {exc}", "retention") from exc
        except StorageError as exc:
            raise ApiError(503, f"the store is unavailable: {exc}", "storage-unavailable") from exc
        deleted_at = await db.run(lambda: catalog.mark_deleted(rid, call.principal.name))
        call.detail = {"objects": count}
        return Deleted(recording_id=rid, deleted_at=utc(deleted_at), objects_deleted=count)


def _apply(tags: dict[str, str], patch: dict[str, str | None]) -> None:
    for key, value in patch.items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
