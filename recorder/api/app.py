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
from typing import TYPE_CHECKING, Any

from aiohttp import web

from recorder.api import (
    routes_admin,
    routes_exports,
    routes_ingest,
    routes_keys,
    routes_lifecycle,
    routes_recordings,
    routes_reports,
    routes_rooms,
    routes_transcripts,
)
from recorder.api.audit import AuditLog
from recorder.api.auth import KeyStore, Role
from recorder.api.catalog import Catalog, CatalogSink
from recorder.api.context import ApiContext
from recorder.api.db import SCHEMA_VERSION, Database
from recorder.api.files import archive_of
from recorder.api.metrics import Metrics
from recorder.api.policy import PolicyStore, RoomControl
from recorder.api.problems import Handler, problem_middleware
from recorder.api.registry import Call, Registry, Webhook, problem_response
from recorder.fleet import routes as fleet_routes
from recorder.lifecycle import examples as lifecycle_hooks
from recorder.lifecycle.service import Lifecycle
from recorder.service.manager import RecordingManager
from recorder.service.settings import ServiceSettings
from recorder.transcripts import examples as transcript_hooks
from recorder.webhooks import examples as hooks
from recorder.webhooks.events import EVENT_BODIES, PAYLOADS

if TYPE_CHECKING:
    from recorder.console import Console

log = logging.getLogger(__name__)

OPENAPI_PATH = "/v1/openapi.json"
METRICS_PATH = "/metrics"
METRICS_MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUS_ROLES = frozenset({Role.ADMIN, Role.OPERATOR})
"""/v1/status (recorder/service/app.py) is guarded here: it lists rooms and participants."""


STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Rooms being recorded, recordings finished since start, and each counter source's"
    " figures (janus_events, janus_bridge, composites: present when that part runs).",
    "properties": {
        "rooms": {"type": "object", "additionalProperties": {"type": "object"}},
        "finished": {"type": "array", "items": {"type": "object"}},
        "active_streams": {"type": "integer"},
        "ports_in_use": {"type": "integer"},
    },
    "required": ["rooms", "finished", "active_streams", "ports_in_use"],
    "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
}
STATUS_EXAMPLE: dict[str, Any] = {
    "janus_events": {"http_requests": 120, "received": 348, "malformed": 0, "delivered": 348},
    "janus_bridge": {"errors": 0, "forwarded_publishers": 2, "known_publishers": 2},
    "rooms": {
        hooks.ROOM_ID: {
            "recording_id": hooks.RECORDING_ID,
            "folder": f"/var/lib/callvault/data/recordings/{hooks.RECORDING_ID}",
            "participants": {"1001": ["1001-video-0"], "1002": ["1002-audio-1"]},
        }
    },
    "finished": [],
    "active_streams": 2,
    "ports_in_use": 2,
}
SIGNATURE_HEADERS = (
    (
        "webhook-id",
        "The message id, the same on every attempt: deduplicate on it.",
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    ),
    ("webhook-timestamp", "Unix seconds of this attempt (reject old ones: replay).", "1777887003"),
    (
        "webhook-signature",
        "'v1,' + base64 HMAC-SHA256 of '{webhook-id}.{webhook-timestamp}.{body}' with the endpoint's secret.",
        "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    ),
)
PAYLOAD_OF = {p.event_type: p for p in PAYLOADS}
WEBHOOKS = tuple(
    Webhook(
        name=kind.value,
        body=EVENT_BODIES[kind],
        summary=" ".join((PAYLOAD_OF[kind].__doc__ or kind.value).split()),
        example=json.loads(example.body()),
        headers=SIGNATURE_HEADERS,
    )
    for kind, example in {
        **hooks.payloads(),
        **lifecycle_hooks.payloads(),
        **transcript_hooks.payloads(),
    }.items()
)
"""The webhooks' bodies, from recorder/webhooks/events.py, with examples."""


def _connection(control: RoomControl | None) -> Callable[[], bool] | None:
    """Whether the SFU bridge is connected (JanusBridge.connected), for bridges that say so."""
    if control is None or not isinstance(getattr(control, "connected", None), bool):
        return None
    return lambda: bool(getattr(control, "connected", False))


def _waker(lifecycle: Lifecycle) -> Callable[[str, bool], None]:
    """A catalog hold listener (worker thread): the hold goes to the store before the API answers."""
    loop = asyncio.get_running_loop()

    def changed(recording_id: str, hold: bool) -> None:
        lifecycle.hold_changed(recording_id, hold, loop)

    return changed


class ControlApi:
    ingest: routes_ingest.Ingest | None = None

    def __init__(self, ctx: ApiContext, registry: Registry, metrics: Metrics) -> None:
        self.ctx = ctx
        self.registry = registry
        self.metrics = metrics
        self._openapi: bytes | None = None
        self.lifecycle: Lifecycle | None = None
        """Retention, legal hold in the store, exports (lifecycle.enabled): started with the app."""
        self.console: Console | None = None

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
        location = api.catalog_location(settings.data_dir)  # a SQLite file, or PostgreSQL (api.catalog_url)
        bootstrap = await asyncio.to_thread(api.bootstrap_key)  # before anything is created
        db = await asyncio.to_thread(Database, location)
        catalog = Catalog(db, api.retention_days, api.search_count_limit)
        policy = PolicyStore(db, api.default_policy, settings.janus)
        keys = KeyStore(db, bootstrap)
        audit = AuditLog(db)
        await keys.load()
        if db.dialect == "postgresql":  # other nodes create and revoke keys in the shared catalog
            keys.start_refresh()
        await policy.load()
        if control is not None:
            policy.install(control)
        if db.dialect == "postgresql":  # other nodes change the policy in the shared catalog
            policy.follow(control)
        metrics = Metrics(manager, counters, _connection(control))
        metrics.watch(archive_of(manager.sinks))
        sink = CatalogSink(catalog, on_start=[policy.start_hook])
        sink.segment_listeners.append(metrics.totals.segment_closed)
        sink.track_listeners.append(metrics.totals.track_finished)
        ctx = ApiContext(api, manager, db, catalog, sink, policy, keys, audit, control)
        registry = Registry(keys, audit, body_timeout=api.body_timeout)
        routes_recordings.register(registry, ctx)
        routes_reports.register(registry, ctx)
        routes_rooms.register(registry, ctx)
        routes_admin.register(registry, ctx)
        routes_keys.register(registry, ctx)
        ingest = routes_ingest.register(registry, ctx)  # the mediasoup package's door
        routes_transcripts.register(registry, ctx)  # transcripts, manual redaction (recorder/transcripts)
        fleet_routes.register(registry, ctx)  # GET /v1/recorders (recorder/fleet)
        lifecycle: Lifecycle | None = None
        if settings.lifecycle.enabled:  # retention, legal hold in the store, exports (recorder/lifecycle)
            lifecycle = Lifecycle(
                settings.lifecycle,
                settings.data_dir,
                db,
                catalog,
                audit,
                manager.sinks,
                manager.recordings_dir,
                lambda rid: ctx.live(rid) is not None,
            )
            catalog.hold_listeners.append(_waker(lifecycle))
            routes_lifecycle.register(registry, ctx, lifecycle)
            routes_exports.register(registry, ctx, lifecycle)
        created = cls(ctx, registry, metrics)
        created.ingest = ingest
        created.lifecycle = lifecycle
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
        log.info("control API: catalog %s (schema version %d)", db.describe(), SCHEMA_VERSION)
        return created

    async def _metrics(self, call: Call) -> web.StreamResponse:
        return self._metrics_response()

    def _metrics_response(self) -> web.Response:
        # Rendered on the loop: the collector reads the manager's live state, which only the loop changes.
        return web.Response(body=self.metrics.render(), headers={"Content-Type": METRICS_MEDIA_TYPE})

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
                        "content": {"application/json": {"schema": STATUS_SCHEMA, "example": STATUS_EXAMPLE}},
                    },
                    "401": problem_response(401, "/v1/status"),
                    "403": problem_response(403, "/v1/status"),
                },
            }
        }
        if not self.ctx.settings.status_requires_key:
            status["get"]["security"] = []
            status["get"].pop("x-roles")
            del status["get"]["responses"]["401"], status["get"]["responses"]["403"]
        return self.registry.openapi({"/v1/status": status}, webhooks=WEBHOOKS)

    def mount(self, app: web.Application) -> None:
        app.on_startup.append(self._started)
        app.middlewares.append(problem_middleware)
        app.middlewares.append(self._guard)
        self.registry.mount(app)
        app.router.add_get(OPENAPI_PATH, self._openapi_document)
        if self.ctx.settings.console:  # the supervisor console at /console/, over these same routes
            from recorder.console import Console  # noqa: PLC0415 - the console needs the API, not the reverse

            self.console = Console(self.ctx, self.registry)
            self.console.mount(app)
        if not self.ctx.settings.metrics_require_key:

            async def metrics(request: web.Request) -> web.StreamResponse:
                return self._metrics_response()

            app.router.add_get(METRICS_PATH, metrics)

    async def _started(self, app: web.Application) -> None:
        # `callvault serve` starts the archive after opening the API, before the app: hook it now, so the
        # metrics see its first upload and webhook.
        self.metrics.watch(archive_of(self.ctx.manager.sinks))
        if self.lifecycle is not None:
            await self.lifecycle.start()

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
        if self.ingest is not None:
            await self.ingest.close()
        await self.ctx.keys.close()
        await self.ctx.policy.close()
        await asyncio.to_thread(self.ctx.db.close)
