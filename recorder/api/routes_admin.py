"""API keys (admin) and the audit log (auditor)."""

from __future__ import annotations

from aiohttp import web

from recorder.api.auth import NewApiKey, Role
from recorder.api.context import ApiContext
from recorder.api.models import (
    ApiKeyOut,
    AuditChainResult,
    AuditPage,
    AuditQuery,
    KeyList,
    KeyRequest,
)
from recorder.api.problems import ApiError
from recorder.api.registry import Call, Registry

AUDITOR = {Role.AUDITOR}
ADMIN: set[Role] = set()


def register(reg: Registry, ctx: ApiContext) -> None:
    keys, audit = ctx.keys, ctx.audit

    @reg.add(
        "GET", "/v1/keys", ADMIN, "API keys (never the keys themselves)", "keys", "key.list", response=KeyList
    )
    async def list_keys(call: Call) -> KeyList:
        return KeyList(keys=[ApiKeyOut(**k.model_dump()) for k in keys.list()])

    @reg.add(
        "POST",
        "/v1/keys",
        ADMIN,
        "Create an API key (the key is shown once)",
        "keys",
        "key.create",
        body=KeyRequest,
        response=NewApiKey,
        status=201,
    )
    async def create_key(call: Call) -> NewApiKey:
        request = call.body(KeyRequest)
        created = await keys.create(request.name, request.role, call.principal.name)
        call.target = created.key_id
        call.detail = {"name": created.name, "role": created.role.value}
        return created

    @reg.add(
        "DELETE",
        "/v1/keys/{key_id}",
        ADMIN,
        "Revoke an API key",
        "keys",
        "key.revoke",
        response=ApiKeyOut,
        errors=(404,),
    )
    async def revoke_key(call: Call) -> ApiKeyOut:
        revoked = await keys.revoke(call.path["key_id"])
        if revoked is None:
            raise ApiError(404, f"no API key {call.path['key_id']}", "not-found")
        return ApiKeyOut(**revoked.model_dump())

    @reg.add(
        "GET",
        "/v1/audit",
        AUDITOR,
        "Read the audit log",
        "audit",
        "audit.view",
        query=AuditQuery,
        response=AuditPage,
    )
    async def read_audit(call: Call) -> AuditPage:
        q = call.query(AuditQuery)
        entries = await audit.entries(
            after=q.after, limit=q.limit, action=q.action, actor=q.actor, target=q.target
        )
        next_after = entries[-1].seq if len(entries) == q.limit else None
        call.detail = {"after": q.after, "entries": len(entries)}
        return AuditPage(entries=entries, next_after=next_after)

    @reg.add(
        "GET",
        "/v1/audit/export",
        AUDITOR,
        "Export the whole audit log as JSON Lines",
        "audit",
        "audit.export",
        media_type="application/x-ndjson",
    )
    async def export_audit(call: Call) -> web.StreamResponse:
        entries = await audit.entries()
        call.detail = {"entries": len(entries)}
        body = "".join(e.model_dump_json() + "\n" for e in entries)
        return web.Response(
            text=body,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="callvault-audit.jsonl"'},
        )

    @reg.add(
        "GET",
        "/v1/audit/verify",
        AUDITOR,
        "Check the audit log's hash chain",
        "audit",
        "audit.verify",
        response=AuditChainResult,
    )
    async def verify_audit(call: Call) -> AuditChainResult:
        count, problems = await audit.verify()
        call.detail = {"entries": count, "ok": not problems}
        return AuditChainResult(ok=not problems, entries=count, problems=[p.line() for p in problems])
