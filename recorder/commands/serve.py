"""`callvault serve [--config FILE]`: record every call of the SFU's recorded rooms.

Starts cleanly with Janus down (retries with backoff; /readyz says so) and, on SIGTERM or SIGINT,
finalizes every open recording before it exits. Segments a crash left in the data folder are finalized
at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from janus_bridge.bridge import JanusBridge
from janus_bridge.client import JanusClient
from janus_bridge.intake import EventIntake
from postprocess.compositor import Compositor
from recorder import eventloop, logs
from recorder.api import routes_transcripts
from recorder.api.app import ControlApi
from recorder.api.site import HttpSite
from recorder.archive.archive import Archive
from recorder.config_errors import describe
from recorder.crypto.age import CryptoError
from recorder.db.errors import CATALOG_ERRORS
from recorder.errors import MissingExtraError
from recorder.fleet.commands_node import RoomCommands
from recorder.fleet.node import FleetNode
from recorder.fleet.recovery import recover_own
from recorder.fleet.registry import NodeNameInUseError
from recorder.jobs.fleet import JobNode
from recorder.jobs.settings import Role
from recorder.service.app import EVENTS_HTTP_PATH, EVENTS_WS_PATH, ReadinessCheck, build_app
from recorder.service.manager import RecordingManager
from recorder.service.node_folders import FolderInUseError, FolderLocks, folders_of
from recorder.service.settings import ServiceSettings, load_settings
from recorder.transcripts.service import Transcriber

log = logging.getLogger("callvault.serve")
OPEN_INTAKE = (
    "the Janus event intake accepts events without credentials (janus.events_open): anyone who reaches"
    " the HTTP port can start and stop recordings; set janus.events_token"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the recording service next to Janus")
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except (ValidationError, OSError, ValueError) as exc:  # one line: the setting and why, not the value
        print(f"callvault: error: invalid configuration: {describe(exc, args.config)}", file=sys.stderr)
        return 2
    if settings.archive is not None:  # files the settings name: the recipients file, the playback identity
        try:
            settings.archive.resolved(settings.data_dir).encryption.check()
        except CryptoError as exc:
            print(f"callvault: error: invalid configuration: archive.encryption: {exc}", file=sys.stderr)
            return 2
    level, log_format = logs.requested(args)  # the command line's choice wins over the settings'
    logs.configure(level or settings.log.level, log_format or settings.log.format)
    logs.hide(*logs.secrets_of(settings))  # whatever logs them, they are printed as REDACTED
    try:
        eventloop.run(serve(settings))
    except OSError as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 1
    except MissingExtraError as exc:
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    except FolderInUseError as exc:  # two nodes on one data_dir's own folders
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    except NodeNameInUseError as exc:  # a second recorder with this fleet.node_name
        print(f"callvault: error: {exc}", file=sys.stderr)
        return 2
    except CATALOG_ERRORS as exc:  # unreachable, refused, or written by a newer CallVault: one line
        print(f"callvault: error: catalog: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


async def serve(settings: ServiceSettings, stop: asyncio.Event | None = None, signals: bool = True) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM when `signals`), then finalize every recording."""
    own = FolderLocks()  # this node's own folders (state, spool, outbox, transcript jobs): never shared
    await asyncio.to_thread(own.claim, folders_of(settings), settings.fleet.node())
    try:
        await _serve(settings, stop, signals)
    finally:
        own.release()


async def _serve(settings: ServiceSettings, stop: asyncio.Event | None, signals: bool) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    log.debug("event loop: %s.%s", type(loop).__module__, type(loop).__name__)
    handled = (signal.SIGINT, signal.SIGTERM) if signals else ()
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    recordings = settings.data_dir / "recordings"
    await asyncio.to_thread(recordings.mkdir, parents=True, exist_ok=True)
    # only a recorder's own crash leaves tracks to finalize: an api or worker node sharing the folder
    # would "recover" the tracks a recorder is writing
    # (in a fleet, recorders sharing the folder: only this recorder's own recordings, recorder/fleet)
    records = Role.RECORDER in settings.roles
    crashed = await asyncio.to_thread(recover_own, settings, recordings) if records else []
    for summary in crashed:
        log.info("finalized track %s left by a crash", summary.name)

    manager = RecordingManager(settings)
    checks: list[ReadinessCheck] = []
    counters: dict[str, Callable[[], dict[str, int]]] = {}
    warnings: dict[str, str] = {}
    app = build_app(manager, checks, counters, warnings)
    bridge: JanusBridge | None = None
    intake: EventIntake | None = None
    roles = set(settings.roles)
    jobs = await JobNode.open(settings)  # None: SQLite or all roles in one node: composites in-process
    if settings.janus.enabled and Role.RECORDER in roles:
        client = JanusClient(settings.janus.ws_url, api_secret=settings.janus.api_secret_value())
        bridge = JanusBridge(
            manager,
            settings.janus,
            client,
            empty_room_grace=settings.janus.empty_room_grace,
            restart_grace=settings.janus.restart_grace,
        )
        intake = EventIntake(
            bridge.on_events,
            token=settings.janus.events_token_value(),
            basic_auth=settings.janus.events_basic_auth_value(),
        )
        intake.add_routes(app, http_path=EVENTS_HTTP_PATH, ws_path=EVENTS_WS_PATH)
        janus, events = bridge, intake
        counters["janus_events"] = events.stats.as_dict
        counters["janus_bridge"] = janus.counters
        checks.append(ReadinessCheck("janus", janus.problem))
        if intake.open:
            log.warning(OPEN_INTAKE)
            warnings["janus_events"] = OPEN_INTAKE

    api: ControlApi | None = None
    if settings.api.enabled and Role.API in roles:  # REST API, catalog (a sink, first: room tags), metrics
        api = await ControlApi.open(settings, manager, control=bridge, counters=counters)
        manager.sinks.insert(0, api.sink)
        api.mount(app)
        if jobs is not None:  # exports built by the workers, announced here (recorder/jobs/exports.py)
            jobs.attach_exports(api.lifecycle)
            jobs.attach_reports(api.ctx)  # built by the workers when this node is not one
    fleet = await FleetNode.open(settings, manager, api)  # registers a recorder; its sink after the catalog
    if fleet is not None:
        counters["recorders"] = fleet.counters
    room_commands = RoomCommands.open(settings, manager, bridge, api, fleet)  # a fleet's room control

    archive: Archive | None = None
    queue_worker_only = jobs is not None and roles == {Role.WORKER}  # builds what recorders archive
    if settings.archive is not None and not queue_worker_only:  # storage, signed manifests, webhooks
        archive = Archive(settings.archive, settings.data_dir)

    compositor: Compositor | None = None
    if jobs is not None:  # PostgreSQL: composites through the shared job queue (recorder/jobs/)
        jobs.attach(manager, counters, archive)  # handed to this node's archive once a worker built them
    elif Role.WORKER in roles and (settings.composite.enabled or settings.api.enabled):  # or by policy
        compositor = Compositor(
            settings.composite, settings.data_dir, archive.add_composites if archive is not None else None
        )
        manager.sinks.append(compositor)  # before the archive: its hold must exist when the archive ends
        counters["composites"] = compositor.stats

    transcriber: Transcriber | None = None
    wants_transcripts = settings.transcripts.enabled or settings.transcripts.redact or settings.api.enabled
    if wants_transcripts and not queue_worker_only:  # or by policy
        transcriber = Transcriber(settings.transcripts, settings.data_dir, archive)
        if compositor is not None:  # one manifest revision at a time; redaction rebuilds composites
            transcriber.busy.append(compositor.holding)
            transcriber.composites = settings.composite
        elif jobs is not None:  # the same for composites queued to the workers
            transcriber.busy.append(jobs.holding)
            transcriber.composites = settings.composite
            jobs.attach_transcripts(transcriber)  # done by the workers, published by this recorder
        if api is not None:
            routes_transcripts.attach(transcriber, api.ctx)
        manager.sinks.append(transcriber)  # before the archive: its hold must exist when the archive ends
        counters["transcripts"] = transcriber.stats

    if archive is not None:
        if compositor is not None:
            archive.holds.append(compositor.holding)
        if jobs is not None:  # queued composites: the workers read the folder until they are built
            archive.holds.append(jobs.holding)
            await jobs.load()
        if transcriber is not None:
            archive.holds.append(transcriber.holding)
            await transcriber.load()  # its interrupted jobs hold their folders before the archive starts
        await archive.start()
        manager.sinks.append(archive)
        if fleet is not None:  # recording.failed of a dead peer's recordings to this node's webhooks
            fleet.archive = archive
        stored = archive

        def spool_problem() -> str | None:
            return None if stored.can_accept_new_recording() else "the upload spool is near its disk limit"

        manager.admission.append(spool_problem)
        checks.append(ReadinessCheck("spool", spool_problem))

    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    # api.* limits: request line and header sizes, header timeout, open connections; errors as problems;
    # the access log never shows a credential-like query parameter (sampleevh's ?token=)
    site = HttpSite(
        runner, settings.http_host, settings.http_port, settings.api, access_log_class=logs.AccessLogger
    )
    await site.start()
    log.info("callvault serve listening on http://%s:%d", settings.http_host, settings.http_port)
    try:
        if compositor is not None:
            await compositor.start()
        if jobs is not None:
            jobs.start(stop)
        if fleet is not None:
            fleet.start()
        if room_commands is not None:
            await room_commands.start()
        if transcriber is not None:
            await transcriber.start()
        starting = asyncio.create_task(bridge.start()) if bridge is not None else None
        if bridge is None and api is None:  # nothing can take up calls an earlier run left open
            # (with the API, the ingest API waits ingest.restart_grace for the SFU side to come back)
            for room in list(manager.resumable):
                await manager.finish_abandoned(room)
        await stop.wait()
        if starting is not None and not starting.done():
            starting.cancel()
        log.info("stopping: finalizing %d open recordings", len(manager.rooms))
    finally:
        if room_commands is not None:  # first: a command from now on expires unexecuted (504), not lost
            await room_commands.close()
        try:
            async with asyncio.timeout(settings.shutdown_grace):  # not wait_for: it can swallow a cancel
                await manager.shutdown()
        except TimeoutError:
            log.error(
                "recordings not finalized within %.0f s; segments stay for recovery", settings.shutdown_grace
            )
        if compositor is not None:
            await compositor.stop()
        if jobs is not None:
            await jobs.close()
        if transcriber is not None:
            await transcriber.stop()
        if archive is not None:
            await archive.stop()
        if bridge is not None:
            await bridge.close()
        await runner.cleanup()
        if fleet is not None:
            await fleet.close()
        if api is not None:
            await api.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
