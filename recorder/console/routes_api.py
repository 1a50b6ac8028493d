"""The control API's own routes, answered for a console session instead of an API key.

Each route of the API's registry is mounted again under /console/api (same path after it), with the same
roles, the same validation, the same handler and the same audit action; only the caller comes from the
session cookie, and unsafe methods need the session's CSRF token in `X-CSRF-Token`. Audit entries made
through the console say so (`detail.via = "console"`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from recorder.api.audit import AuditLog, DetailValue
from recorder.api.auth import Principal
from recorder.api.problems import ApiError
from recorder.api.registry import (
    _OUTCOMES,
    Call,
    Route,
    _check_path,
    _parse_body,
    _parse_query,
)

PREFIX = "/console/api"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Authenticate = Callable[[web.Request], Principal]
"""The session's principal (ApiError 401 without one; 403 when an unsafe request lacks the CSRF token)."""
Quiet = Callable[[Route, web.Request, Principal], bool]
"""True when this call is not audited (a repeat the audit log already has)."""


class CsrfRefused(ApiError):
    """403: an unsafe request of a signed-in session without its CSRF token or from another origin (audited
    as `console.csrf_refused`: someone's page tried to act with a user's cookie)."""

    def __init__(self, principal: Principal, detail: str, reason: str) -> None:
        super().__init__(403, detail, "csrf")
        self.principal = principal
        self.reason = reason


async def audit_csrf(
    audit: AuditLog, refused: CsrfRefused, request: web.Request, what: str, target: str | None
) -> None:
    p = refused.principal
    await audit.append(
        p.name,
        p.role.value,
        "console.csrf_refused",
        target,
        "denied",
        request.remote,
        {"request": what, "reason": refused.reason, "via": "console"},
    )


def forbidden(principal: Principal, route: Route) -> ApiError:
    allowed = ", ".join(sorted(r.value for r in route.roles))
    return ApiError(403, f"role {principal.role.value} may not do this (allowed: {allowed})", "forbidden")


def endpoint(
    route: Route,
    audit: AuditLog,
    authenticate: Authenticate,
    body_timeout: float,
    action: str | None = None,
    quiet: Quiet | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The API route `route` for console sessions; `action` replaces its audit action (plays)."""
    audited = action or route.audit

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            principal = authenticate(request)  # 401: not audited (no one), as in the API
        except CsrfRefused as refused:
            target = next(iter(request.match_info.values()), None)
            await audit_csrf(audit, refused, request, f"{route.method} {route.path}", target)
            raise
        call = Call(request, principal, dict(request.match_info), None, None)
        call.target = next(iter(call.path.values()), None)
        silent = quiet is not None and quiet(route, request, principal)

        async def record(outcome: str, detail: dict[str, DetailValue]) -> None:
            if audited is not None and not silent:
                await audit.append(
                    principal.name,
                    principal.role.value,
                    audited,
                    call.target,
                    outcome,
                    request.remote,
                    {**detail, "via": "console"},
                )

        try:
            if principal.role not in route.roles:
                raise forbidden(principal, route)
            _check_path(call.path)
            call.query_model = _parse_query(route.query, request)
            call.body_model = await _parse_body(route.body, request, body_timeout)
            result = await route.handler(call)
        except ApiError as error:
            await record(_OUTCOMES.get(error.status, "failed"), {**call.detail, "error": error.detail})
            raise
        await record("ok", call.detail)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(
            status=route.status, body=result.model_dump_json(by_alias=True), content_type="application/json"
        )

    answer.__name__ = f"console_{route.operation_id}"
    return answer
