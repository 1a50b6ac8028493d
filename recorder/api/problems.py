"""RFC 9457 problem details: every error the API answers is `application/problem+json` and, when a
request field is at fault, names it (`detail` and `invalid-params`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://callvault.dev/problems/"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid request",
    500: "Internal error",
    502: "SFU error",
    503: "Unavailable",
    504: "Gateway timeout",
}


class InvalidParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The offending field: 'body.metadata.x', 'query.limit', 'path.room_id'.")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str = Field(description="URI naming the kind of problem.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    invalid_params: list[InvalidParam] | None = Field(default=None, alias="invalid-params")


class ApiError(Exception):
    """Raised by handlers: answered as a problem with this status."""

    def __init__(
        self,
        status: int,
        detail: str,
        kind: str | None = None,
        invalid: list[InvalidParam] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or TITLES.get(status, "error").lower().replace(" ", "-")
        self.invalid = invalid
        self.headers = headers or {}


def invalid_request(where: str, error: ValidationError) -> ApiError:
    """A pydantic validation error of the request's `where` (body, query, path) as a 422 naming fields."""
    params = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(p) for p in item["loc"])
        params.append(InvalidParam(name=f"{where}.{loc}" if loc else where, reason=item["msg"]))
    first = params[0] if params else InvalidParam(name=where, reason="invalid")
    return ApiError(422, f"{first.name}: {first.reason}", "invalid-request", params)


def problem_body(error: ApiError, instance: str | None) -> bytes:
    problem = Problem(
        type=TYPE_BASE + error.kind,
        title=TITLES.get(error.status, "Error"),
        status=error.status,
        detail=error.detail,
        instance=instance,
        **{"invalid-params": error.invalid},
    )
    return json.dumps(problem.model_dump(mode="json", by_alias=True, exclude_none=True)).encode()


def problem_response(request: web.BaseRequest | None, error: ApiError) -> web.Response:
    """`error` as a problem response; `request` None: one that never reached routing (instance unknown)."""
    headers = dict(error.headers)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="callvault"'
    response = web.Response(
        status=error.status,
        body=problem_body(error, request.path if request is not None else None),
        content_type=PROBLEM_JSON,
        headers=headers,
    )
    if error.status == 408:  # the rest of the request may still be on its way: not this connection again
        response.force_close()
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or path == "/metrics"


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer errors of API paths as problems (aiohttp's own 404/405/413 too); others pass unchanged."""
    try:
        return await handler(request)
    except ApiError as error:
        return problem_response(request, error)
    except web.HTTPException as exc:
        if not is_api_path(request.path) or exc.status < 400:
            raise
        return problem_response(request, from_http_exception(request, exc))
    except Exception:
        if not is_api_path(request.path):
            raise
        log.exception("%s %s failed", request.method, request.path)
        return problem_response(request, ApiError(500, "internal error; see the service log"))


def from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    """aiohttp's own answer (404 no route, 405 wrong method, 413 body too large...) as a problem; a 405
    keeps its Allow header (RFC 9110: the methods the resource supports)."""
    detail = exc.reason or TITLES.get(exc.status, "error")
    headers = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        headers["Allow"] = ", ".join(allowed)
        detail = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}"
    elif exc.status == 404:
        detail = f"no such endpoint: {request.path}"
    return ApiError(exc.status, detail, headers=headers)
