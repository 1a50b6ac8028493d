"""`ControlApi`: everything the control plane adds to `callvault serve`, opened, mounted and closed in
one place.

    api = await ControlApi.open(settings, manager, control=bridge, counters=counters)
    manager.sinks.insert(0, api.sink)     # first: the room policy's tags reach the other sinks
    api.mount(app)                        # /v1/..., /v1/openapi.json, /metrics, problem+json errors
    ...
    await api.close()
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from recorder.api import routes_admin, routes_recordings, routes_rooms
from recorder.api.audit import AuditLog
from recorder.api.auth import KeyStore, Role
from recorder.api.catalog import Catalog, CatalogSink
from recorder.api.context import ApiContext
from recorder.api.db import SCHEMA_VERSION, Database
from recorder.api.metrics import CallVaultCollector, Totals, new_registry, render
from recorder.api.policy import PolicyStore, RoomControl
from recorder.api.problems import Handler, problem_middleware
from recorder.api.registry import Call, Registry
from recorder.service.manager import RecordingManager
from recorder.service.settings import ServiceSettings

log = logging.getLogger(__name__)

OPENAPI_PATH = "/v1/openapi.json"
METRICS_PATH = "/metrics"
METRICS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_ROLES = frozenset({Role.ADMIN, Role.OPERATOR})
"""/v1/status (recorder/service/app.py) is guarded here: it lists rooms and participants."""


class ControlApi:
    def __init__(self, ctx: ApiContext, registry: Registry, metrics_collector: CallVaultCollector) -> None:
        self.ctx = ctx
        self.registry = registry
        self.collector = metrics_collector
        self.metrics_registry = new_registry(metrics_collector)
        self._openapi: bytes | None = None

    @property
    def sink(self) -> CatalogSink:
        return self.ctx.sink

    @classmethod
    async def open(
        cls,
        settings: ServiceSettings,
        manager: RecordingManager,
        control: RoomControl | None = None,
        counters: dict[str, Callable[[], dict[str, int]]] | None = None,
    ) -> ControlApi:
        api = settings.api
        path = api.resolved_catalog(settings.data_dir)
        bootstrap = await asyncio.to_thread(api.bootstrap_key)  # before anything is created
        db = await asyncio.to_thread(Database, path)
        catalog = Catalog(db, api.retention_days)
        policy = PolicyStore(db, api.default_policy, settings.janus)
        keys = KeyStore(db, bootstrap)
        audit = AuditLog(db)
        await keys.load()
        await policy.load()
        if control is not None:
            policy.install(control)
        totals = Totals()
        sink = CatalogSink(catalog, on_start=[policy.start_hook])
        sink.segment_listeners.append(totals.segment_closed)
        sink.track_listeners.append(totals.track_finished)
        ctx = ApiContext(api, manager, db, catalog, sink, policy, keys, audit, control)
        registry = Registry(keys, audit, body_timeout=api.body_timeout)
        routes_recordings.register(registry, ctx)
        routes_rooms.register(registry, ctx)
        routes_admin.register(registry, ctx)
        collector = CallVaultCollector(manager, totals, counters)
        created = cls(ctx, registry, collector)
        if api.metrics_require_key:
            registry.add(
                "GET",
                METRICS_PATH,
                {Role.OPERATOR},
                "Prometheus metrics",
                "operations",
                None,
                media_type=METRICS_MEDIA_TYPE,
            )(created._metrics)
        if not keys.list() and bootstrap is None:
            log.warning(
                "control API: no API keys and no bootstrap admin key (api.admin_key): every call is 401"
            )
        log.info("control API: catalog %s (schema version %d)", path, SCHEMA_VERSION)
        return created

    async def _metrics(self, call: Call) -> web.StreamResponse:
        return self._metrics_response()

    def _metrics_response(self) -> web.Response:
        # Rendered on the loop: the collector reads the manager's live state, which only the loop changes.
        return web.Response(body=render(self.metrics_registry), headers={"Content-Type": METRICS_MEDIA_TYPE})

    def openapi(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "get": {
                "operationId": "status",
                "summary": "Open recordings, participants, tracks and event counters",
                "tags": ["operations"],
                "security": [{"bearer": []}, {"apiKey": []}],
                "x-roles": sorted(r.value for r in STATUS_ROLES),
                "responses": {
                    "200": {
                        "description": "status",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": {"description": "no API key, or an unknown or revoked one"},
                    "403": {"description": "the key's role may not do this"},
                },
            }
        }
        if not self.ctx.settings.status_requires_key:
            status["get"]["security"] = []
            status["get"].pop("x-roles")
            del status["get"]["responses"]["401"], status["get"]["responses"]["403"]
        return self.registry.openapi({"/v1/status": status})

    def mount(self, app: web.Application) -> None:
        app.middlewares.append(problem_middleware)
        app.middlewares.append(self._guard)
        self.registry.mount(app)
        app.router.add_get(OPENAPI_PATH, self._openapi_document)
        if not self.ctx.settings.metrics_require_key:

            async def metrics(request: web.Request) -> web.StreamResponse:
                return self._metrics_response()

            app.router.add_get(METRICS_PATH, metrics)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/v1/status" and self.ctx.settings.status_requires_key:
            self.registry.authorize(request, STATUS_ROLES)
        return await handler(request)

    async def _openapi_document(self, request: web.Request) -> web.Response:
        if self._openapi is None:
            self._openapi = json.dumps(self.openapi(), indent=1).encode()
        return web.Response(body=self._openapi, content_type="application/json")

    async def close(self) -> None:
        await asyncio.to_thread(self.ctx.db.close)
