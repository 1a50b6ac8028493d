"""/metrics as Prometheus users expect it: every count a real counter (`_total`, so `rate()` works) and every
level a gauge, never one gauge with a `counter` label mixing both; the process_* and python_* collectors,
callvault_build_info, callvault_janus_connected; histograms of upload latency, time to available and webhook
delivery latency, and counters of webhook attempts that failed. Checked with prometheus-client's parsers
(the OpenMetrics one is strict) and with promtool when it is installed (Debian package `prometheus`)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from api_kit import ADMIN_KEY, Api, ApiFactory, service_settings
from archive_kit import Receiver
from janus_fixture import ROOM_SECRET, JanusServer, free_port, start_or_skip
from media import encode_reference, rtp_sender
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from service_kit import until

from recorder.api.app import ControlApi
from recorder.api.metrics import SOURCES
from recorder.archive import Archive, ArchiveSettings
from recorder.commands.serve import serve
from recorder.service.app import build_app
from recorder.service.manager import RecordingManager
from recorder.webhooks import generate_secret

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def families(text: str) -> dict[str, Metric]:
    """Metric families by name (a counter's family is named without `_total`, its sample with it)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(found: dict[str, Metric], family: str, sample: str | None = None, **labels: str) -> float:
    """A sample's value: `sample` (default: the family's own, `_total` for a counter) with `labels`."""
    name = sample or family + ("_total" if found[family].type == "counter" else "")
    for s in found[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError(f"{name} {labels}")


def promtool_check(text: str) -> None:
    """`promtool check metrics` (its lint), when promtool is installed."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def check_common(found: dict[str, Metric]) -> None:
    for family in found.values():
        for sample in family.samples:
            assert "counter" not in sample.labels, sample  # the old gauge-with-a-label shape
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family
    assert found["callvault_build_info"].type == "gauge"
    assert value(found, "callvault_build_info", version="0.1.0") == 1
    assert found["process_cpu_seconds"].type == "counter"
    assert value(found, "process_resident_memory_bytes") > 0
    assert value(found, "python_info", implementation="CPython") == 1
    assert "python_gc_collections" in found


async def test_janus_figures_with_a_real_janus(tmp_path: Path) -> None:
    """`callvault serve` following a real Janus whose sampleevh posts events: event counts are counters
    that only grow, levels are gauges, the connection is a gauge; /v1/status and /metrics agree on which
    figures there are."""
    port = free_port()
    janus = JanusServer(
        tmp_path / "janus", sampleevh_url=f"http://127.0.0.1:{port}/janus/events?token=evtoken"
    )
    start_or_skip(janus)
    try:
        janus_settings = {
            "ws_url": janus.ws_url,
            "admin_key": janus.admin_key,
            "room_secret": ROOM_SECRET,
            "events_token": "evtoken",
        }
        settings = service_settings(tmp_path, janus=janus_settings, http_port=port)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop, signals=False))
        try:
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}", headers=HEADERS) as http:

                async def scrape() -> str:
                    async with http.get("/metrics") as r:
                        assert r.status == 200, await r.text()
                        assert r.content_type == "text/plain"
                        return await r.text()

                async def connected_with_events() -> bool:
                    try:
                        found = families(await scrape())
                    except aiohttp.ClientError:
                        return False
                    return (
                        value(found, "callvault_janus_connected") == 1
                        and value(
                            found, "callvault_janus_events_received", "callvault_janus_events_received_total"
                        )
                        > 0
                    )

                await until(connected_with_events, 20)
                first = await scrape()
                async with http.get("/v1/status") as r:
                    status = await r.json()
                await asyncio.sleep(0.5)
                second = await scrape()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    finally:
        janus.stop()

    before, after = families(first), families(second)
    check_common(after)
    promtool_check(second)
    for source, figures in SOURCES.items():
        assert set(status[source]) == set(figures), source  # every figure has its metric, and no more
        for key, figure in figures.items():
            family = after[figure.name]
            assert family.type == figure.kind, figure
            assert value(after, figure.name) >= 0 and status[source][key] >= 0
            if figure.kind == "counter":  # monotonic: rate() over these scrapes is well defined
                assert value(after, figure.name) >= status[source][key] >= value(before, figure.name)
    received = after["callvault_janus_events_received"]
    assert received.type == "counter" and received.documentation
    assert after["callvault_janus_known_publishers"].type == "gauge"
    assert after["callvault_janus_forwarded_publishers"].type == "gauge"
    assert after["callvault_janus_connected"].type == "gauge"
    assert not any(name.startswith(("callvault_janus_events ", "callvault_janus_bridge ")) for name in after)


class FailingEndpoint:
    """A webhook endpoint that answers every POST with a 503 (a receiver being down)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.posts = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.posts += 1
        return web.Response(status=503)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def endpoints() -> Any:
    receiver, failing = Receiver(free_port(), generate_secret()), FailingEndpoint(free_port())
    await receiver.start()
    await failing.start()
    yield receiver, failing
    await receiver.stop()
    await failing.stop()


async def test_latency_histograms_and_failed_webhooks(
    make_api: ApiFactory, tmp_path: Path, endpoints: tuple[Receiver, FailingEndpoint]
) -> None:
    """A real call (VP8 from ffmpeg as RTP) recorded and stored by a real archive (local store) that
    announces it to two webhook endpoints, one of them down."""
    receiver, failing = endpoints
    reference = await asyncio.to_thread(encode_reference, "vp8", tmp_path, 1.0)
    archive = Archive(
        ArchiveSettings.model_validate(
            {
                "finish_timeout": 20,
                "completion_poll": 0.2,
                "webhooks": {
                    "endpoints": [
                        {"id": "crm", "url": receiver.url, "secret": receiver.secret},
                        {"id": "down", "url": failing.url, "secret": generate_secret(), "timeout": 2},
                    ],
                    "retry_initial": 0.2,
                    "retry_max": 0.2,
                    "max_retry_seconds": 1.5,
                    "poll_interval": 0.1,
                },
            }
        ),
        tmp_path / "data",
    )
    await archive.start()
    api: Api = await make_api(sinks=[archive])
    try:
        assert api.sfu is not None
        status, text = await api.call("GET", "/metrics", role="operator")
        assert status == 200
        found = families(text)
        for name in (
            "callvault_upload_latency_seconds",
            "callvault_recording_available_seconds",
            "callvault_webhook_delivery_latency_seconds",
            "callvault_webhook_attempt_duration_seconds",
        ):
            assert found[name].type == "histogram", name
            assert value(found, name, name + "_count") == 0
        for endpoint in ("crm", "down"):  # every configured endpoint's series exists from the start
            assert value(found, "callvault_webhook_failed_attempts", endpoint=endpoint) == 0

        await api.sfu.publish("r", "1001", "Agent")
        (rid,) = [r.info.recording_id for r in api.manager.rooms.values()]
        sender = rtp_sender(reference, api.sfu.port_of("r", "1001"))
        await asyncio.to_thread(sender.wait, 30)
        stopping = time.time()
        status, _ = await api.call("POST", "/v1/rooms/r/stop", role="operator")
        assert status == 200
        finished = await receiver.wait_for(rid, "recording.finished", 30)
        events = len(receiver.of(rid))  # recording.started and .finished

        async def down_given_up() -> bool:  # each event to "down": retried, then given up
            _, text = await api.call("GET", "/metrics", role="operator")
            return value(families(text), "callvault_webhook_deliveries_failed", endpoint="down") == events

        await until(down_given_up, 20)
        status, text = await api.call("GET", "/metrics", role="operator")
    finally:
        for room in list(api.manager.rooms):
            await api.manager.finish_room(room)
        await archive.stop()

    found = families(text)
    check_common(found)
    promtool_check(text)
    list(parse_openmetrics(openmetrics_latest(api.api.metrics.registry).decode()))  # strict: raises if bad

    uploads = value(found, "callvault_uploads")
    assert uploads >= 4  # segments, the joined track, its summary, the manifest and its signature
    assert (
        value(found, "callvault_upload_latency_seconds", "callvault_upload_latency_seconds_count") == uploads
    )
    assert value(found, "callvault_upload_latency_seconds", "callvault_upload_latency_seconds_sum") > 0

    available = "callvault_recording_available_seconds"
    assert value(found, available, available + "_count") == 1
    waited = value(found, available, available + "_sum")
    announced = finished.event.timestamp.timestamp()
    assert 0 < waited <= announced - stopping  # from the recording's end to recording.finished
    assert value(found, available, available + "_bucket", le="+Inf") == 1

    delivered = "callvault_webhook_delivery_latency_seconds"
    assert value(found, delivered, delivered + "_count") == events == len(receiver.received) >= 2
    attempts = value(found, "callvault_webhook_attempts", endpoint="crm")
    assert attempts == len(receiver.received)
    assert value(found, "callvault_webhook_failed_attempts", endpoint="crm") == 0
    assert value(found, "callvault_webhook_failed_attempts", endpoint="down") == failing.posts >= 2  # retried
    assert value(found, "callvault_webhook_attempts", endpoint="down") == failing.posts
    duration = "callvault_webhook_attempt_duration_seconds"
    assert value(found, duration, duration + "_count") == attempts + failing.posts
    assert value(found, "callvault_webhook_backlog") >= 0


async def test_an_archive_started_after_the_api_is_counted_from_the_start(tmp_path: Path) -> None:
    """`callvault serve`'s order: the API opens, then the archive starts, then the app: the archive's
    uploader and dispatcher are hooked when the app starts, before any scrape (an upload or a webhook
    between start-up and the first scrape counts)."""
    settings = service_settings(tmp_path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    manager = RecordingManager(settings)
    control_api = await ControlApi.open(settings, manager)
    app = build_app(manager, [], {})
    control_api.mount(app)
    archive = Archive(ArchiveSettings(), settings.data_dir)
    await archive.start()
    manager.sinks.append(archive)
    runner = web.AppRunner(app, handle_signals=False)
    try:
        instruments = control_api.metrics.instruments
        assert instruments.uploaded not in archive.uploader.on_uploaded
        await runner.setup()
        assert instruments.uploaded in archive.uploader.on_uploaded
        assert control_api.metrics.totals.uploaded in archive.uploader.on_uploaded
        assert instruments.published in archive.dispatcher.on_published
        assert instruments.attempted in archive.dispatcher.on_attempt
        control_api.metrics.render()  # a scrape hooks nothing twice
        assert archive.uploader.on_uploaded.count(instruments.uploaded) == 1
    finally:
        await runner.cleanup()
        await archive.stop()
        await control_api.close()
