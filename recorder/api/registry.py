"""A small route registry: each route declares its roles, path, query, body and response models and its
audit action. It mounts the routes on aiohttp (authorizing, validating and auditing every call) and builds
the OpenAPI 3.1 document from the same declarations and the pydantic models' JSON Schemas."""

from __future__ import annotations

import asyncio
import re
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from recorder import __version__
from recorder.api import examples
from recorder.api.audit import AuditLog, DetailValue
from recorder.api.auth import KeyStore, Principal, Role, presented_key
from recorder.api.models import ID_PATTERN
from recorder.api.problems import PROBLEM_JSON, ApiError, Problem, invalid_request

M = TypeVar("M", bound=BaseModel)
Result = BaseModel | web.StreamResponse
HandlerFn = Callable[["Call"], Awaitable[Result]]

_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_ID = re.compile(ID_PATTERN)
_OUTCOMES = {401: "denied", 403: "denied", 404: "not-found", 409: "refused", 422: "invalid"}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: HandlerFn
    roles: frozenset[Role]
    summary: str
    tag: str
    audit: str | None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    media_type: str | None = None
    """Success media type when not JSON (file downloads, exports, metrics); the body is then a string."""
    more_media_types: tuple[str, ...] = ()
    """Other media types the success answer can have (a file's own type)."""
    redirect: str | None = None
    """When the route can answer 307 instead: what the redirect is to (its Location)."""
    errors: tuple[int, ...] = ()
    description: str = ""

    @property
    def params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


@dataclass(frozen=True)
class Webhook:
    """A request CallVault sends (an OpenAPI 3.1 `webhooks` entry): its name, body model and example."""

    name: str
    body: type[BaseModel]
    summary: str
    example: Any
    headers: tuple[tuple[str, str, str], ...] = ()
    """(name, description, example) of each header it carries."""


TAGS = {
    "recordings": "Search, view, tag, pause and resume recordings; download, verify, hold and delete them.",
    "policy": "Which rooms are recorded (the default and per room), and rooms' live state; start and stop.",
    "keys": "API keys and their roles (admin only); a key is shown once, when it is created.",
    "audit": "The hash-chained audit log of every call: read, export and check it.",
    "operations": "The service's status page and Prometheus metrics.",
    "webhooks": "What CallVault POSTs to the configured webhook endpoints (Standard Webhooks signatures).",
}
"""Tag descriptions of the OpenAPI document."""


@dataclass
class Call:
    """One authorized call: who, the validated path, query and body, and what the audit entry says."""

    request: web.Request
    principal: Principal
    path: dict[str, str]
    query_model: BaseModel | None
    body_model: BaseModel | None
    target: str | None = None
    detail: dict[str, DetailValue] = field(default_factory=dict)

    def query(self, model: type[M]) -> M:
        assert isinstance(self.query_model, model)
        return self.query_model

    def body(self, model: type[M]) -> M:
        assert isinstance(self.body_model, model)
        return self.body_model

    @property
    def remote(self) -> str | None:
        return self.request.remote


class Registry:
    def __init__(self, keys: KeyStore, audit: AuditLog, body_timeout: float = 10.0) -> None:
        self.keys = keys
        self.audit = audit
        self.body_timeout = body_timeout
        """Seconds a request body has to arrive (api.body_timeout)."""
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        roles: set[Role],
        summary: str,
        tag: str,
        audit: str | None,
        **options: Any,
    ) -> Callable[[HandlerFn], HandlerFn]:
        """Decorator: register the handler for METHOD PATH. Admin may always call."""

        def register(handler: HandlerFn) -> HandlerFn:
            route = Route(
                method, path, handler, frozenset({Role.ADMIN, *roles}), summary, tag, audit, **options
            )
            self.routes.append(route)
            return handler

        return register

    # -- serving --------------------------------------------------------------------------------------

    def mount(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, route.path, self._endpoint(route))

    def authorize(self, request: web.Request, roles: frozenset[Role]) -> Principal:
        principal = self.keys.authenticate(presented_key(request))
        if principal.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise ApiError(
                403, f"role {principal.role.value} may not do this (allowed: {allowed})", "forbidden"
            )
        return principal

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            principal = self.keys.authenticate(presented_key(request))  # 401: not audited (no one)
            call = Call(request, principal, dict(request.match_info), None, None)
            call.target = next(iter(call.path.values()), None)
            try:
                if principal.role not in route.roles:
                    self.authorize(request, route.roles)
                _check_path(call.path)
                call.query_model = _parse_query(route.query, request)
                call.body_model = await _parse_body(route.body, request, self.body_timeout)
                result = await route.handler(call)
            except ApiError as error:
                if route.audit is not None:
                    outcome = _OUTCOMES.get(error.status, "failed")
                    await self._audit(route.audit, call, outcome, {**call.detail, "error": error.detail})
                raise
            if route.audit is not None:
                await self._audit(route.audit, call, "ok", call.detail)
            if isinstance(result, web.StreamResponse):
                return result
            return web.Response(
                status=route.status,
                body=result.model_dump_json(by_alias=True),
                content_type="application/json",
            )

        endpoint.__name__ = route.operation_id
        return endpoint

    async def _audit(self, action: str, call: Call, outcome: str, detail: dict[str, DetailValue]) -> None:
        await self.audit.append(
            call.principal.name, call.principal.role.value, action, call.target, outcome, call.remote, detail
        )

    # -- OpenAPI --------------------------------------------------------------------------------------

    def openapi(
        self, extra_paths: dict[str, Any] | None = None, webhooks: Sequence[Webhook] = ()
    ) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every registered route, with an example of every body; `webhooks`
        are the requests the service sends (their schemas beside the API's)."""
        wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(Problem, "serialization")]
        wanted += [(w.body, "serialization") for w in webhooks]
        for r in self.routes:
            for model, mode in (
                (r.query, "validation"),
                (r.body, "validation"),
                (r.response, "serialization"),
            ):
                if model is not None and (model, mode) not in wanted:
                    wanted.append((model, mode))  # type: ignore[arg-type]
        refs, top = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
        schemas: dict[str, Any] = dict(top.get("$defs", {}))

        def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
            return dict(refs[(model, mode)])

        def schema_of(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
            found = ref(model, mode)
            name = found["$ref"].rsplit("/", 1)[-1]
            return dict(schemas[name])

        paths: dict[str, Any] = {}
        for r in self.routes:
            responses: dict[str, Any] = {}
            if r.media_type is not None:
                content = {t: _text_content(t) for t in (r.media_type, *r.more_media_types)}
                responses[str(r.status)] = {"description": r.summary, "content": content}
            elif r.response is not None:
                content = {
                    "application/json": {
                        "schema": ref(r.response, "serialization"),
                        "example": examples.body(r.response),
                    }
                }
                responses[str(r.status)] = {"description": r.summary, "content": content}
            else:
                responses[str(r.status)] = {"description": r.summary}
            if r.redirect is not None:
                responses["307"] = {
                    "description": r.redirect,
                    "headers": {
                        "Location": {
                            "description": "Where to get it (a presigned URL of the store).",
                            "required": True,
                            "schema": {"type": "string", "format": "uri"},
                        }
                    },
                }
            codes = {401, 403, *r.errors}
            if r.params or r.query or r.body:
                codes |= {400, 408, 422} if r.body else {422}
            for code in sorted(codes):
                responses[str(code)] = problem_response(code, r.path)
            parameters: list[dict[str, Any]] = [
                {
                    "name": p,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": ID_PATTERN},
                }
                for p in r.params
            ]
            if r.query is not None:
                qs = schema_of(r.query, "validation")
                required = set(qs.get("required", []))
                for name, prop in qs.get("properties", {}).items():
                    param: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
                    if "description" in prop:
                        param["description"] = prop["description"]
                    param["schema"] = prop
                    parameters.append(param)
            op: dict[str, Any] = {
                "operationId": r.operation_id,
                "summary": r.summary,
                "tags": [r.tag],
                "security": [{"bearer": []}, {"apiKey": []}],
                "x-roles": sorted(role.value for role in r.roles),
                "responses": responses,
            }
            if r.description:
                op["description"] = r.description
            if parameters:
                op["parameters"] = parameters
            if r.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": ref(r.body, "validation"),
                            "example": examples.body(r.body),
                        }
                    },
                }
            paths.setdefault(r.path, {})[r.method.lower()] = op
        for path, item in (extra_paths or {}).items():
            paths.setdefault(path, {}).update(item)
        hooks = {
            w.name: {
                "post": {
                    "operationId": "webhook_" + w.name.replace(".", "_"),
                    "summary": w.summary,
                    "tags": ["webhooks"],
                    "parameters": [
                        {
                            "name": name,
                            "in": "header",
                            "required": True,
                            "description": text,
                            "schema": {"type": "string"},
                            "example": example,
                        }
                        for name, text, example in w.headers
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": ref(w.body, "serialization"), "example": w.example}
                        },
                    },
                    "responses": {
                        "2XX": {"description": "Delivered: any 2xx answer."},
                        "default": {"description": "Not delivered: retried with backoff, then given up."},
                    },
                }
            }
            for w in webhooks
        }
        used = {op["tags"][0] for item in [*paths.values(), *hooks.values()] for op in item.values()}
        document: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {
                "title": "CallVault control API",
                "version": __version__,
                "description": "Recording policy, pause/resume, metadata, catalog search, downloads,"
                " access control and the audit log. Every operation needs an API key"
                " (Authorization: Bearer <key>) of one of the roles in its x-roles. Times are RFC 3339"
                " date-times with their offset (answers: UTC, `Z`).",
                "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
            },
            "servers": [{"url": "/"}],
            "tags": [{"name": t, "description": text} for t, text in TAGS.items() if t in used],
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                },
            },
        }
        if hooks:
            document["webhooks"] = hooks
        return document


def problem_response(code: int, path: str) -> dict[str, Any]:
    """The OpenAPI response object of a problem with this status (with an example)."""
    return {
        "description": _ERROR_TEXT.get(code, "error"),
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": examples.problem(code, path),
            }
        },
    }


def _text_content(media_type: str) -> dict[str, Any]:
    if media_type in examples.TEXT:
        return {"schema": {"type": "string"}, "example": examples.TEXT[media_type]}
    return {"schema": {"type": "string", "format": "binary"}}


_ERROR_TEXT = {
    400: "missing or malformed request body",
    401: "no API key, or an unknown or revoked one",
    403: "the key's role may not do this",
    404: "no such recording, room or participant",
    408: "the request body did not arrive within api.body_timeout (the connection is closed)",
    409: "refused in the current state (legal hold, retention, recording in progress...)",
    416: "the Range asked for is outside the file",
    422: "a request field is invalid: the problem names it",
    502: "the SFU refused or cannot be reached",
    503: "the store cannot be reached now, or (a fleet) the recorder concerned is not alive; retry later",
    504: "a fleet's recorder did not answer the command in time (fleet.command_timeout_seconds)",
}


def _check_path(params: dict[str, str]) -> None:
    for name, value in params.items():
        if not _ID.fullmatch(value):
            raise ApiError(
                422,
                f"path.{name}: must be 1-128 letters, digits, '.', '_' or '-', starting with a letter"
                " or digit",
                "invalid-request",
            )


def _is_list(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return typing.get_origin(annotation) is list


def _parse_query(model: type[BaseModel] | None, request: web.Request) -> BaseModel | None:
    if model is None:
        return None
    data: dict[str, Any] = {}
    for name in set(request.query.keys()):
        if name in model.model_fields and _is_list(model, name):
            data[name] = request.query.getall(name)
        else:
            data[name] = request.query.get(name)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request("query", exc) from None


async def _parse_body(
    model: type[BaseModel] | None, request: web.Request, read_within: float
) -> BaseModel | None:
    """The body as `model`, strictly: JSON types as declared (`0` is no boolean, `"1"` no number)."""
    if model is None:
        return None
    try:
        async with asyncio.timeout(read_within):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(
            408, f"body: not received within {read_within:g} s (api.body_timeout)", "body-timeout"
        ) from None
    if not raw.strip():
        raise ApiError(400, "body: required, a JSON object ({} when no field is set)", "missing-body")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise ApiError(400, "body: not valid JSON", "malformed-body") from None
        raise invalid_request("body", exc) from None
