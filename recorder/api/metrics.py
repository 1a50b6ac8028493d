"""Prometheus metrics (prometheus-client) on the API's own registry.

- A custom collector reads, at scrape time, what the manager, its sessions and the archive know, and the
  figures of the counter sources `callvault serve` hands over (`counters`: the Janus event intake, the
  bridge, the compositor). Each figure is exported under its own name with its real type (`SOURCES`):
  monotonic counts as counters (`..._total`, so `rate()` works), levels as gauges. A figure the table
  does not know is exported untyped, never as a wrong type.
- `Instruments` are observed as things happen (histograms and counters that a scrape cannot rebuild):
  upload latency, time to available, webhook delivery latency and attempt duration, webhook attempts that
  failed. They hook the archive's uploader and webhook dispatcher (`Instruments.watch`).
- prometheus-client's own process_* and python_* collectors, and callvault_build_info.

Parts that are absent (no archive, no bridge) are skipped.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from recorder import __version__, native
from recorder.api.files import archive_of
from recorder.models import SegmentInfo, TrackSummary
from recorder.service.manager import RecordingManager
from recorder.storage.base import PutResult
from recorder.storage.spool import UploadJob
from recorder.webhooks.dispatcher import AttemptReport
from recorder.webhooks.events import EventType, RecordingFinished, WebhookEvent
from recorder.webhooks.outbox import DeliveryState

log = logging.getLogger(__name__)

TRACK_COUNTERS = (
    ("packets_received", "RTP packets received"),
    ("packets_lost", "RTP packets lost"),
    ("packets_paused", "RTP packets dropped unread while paused"),
    ("frames", "frames recorded"),
    ("frames_dropped", "frames dropped waiting for a keyframe"),
    ("keyframe_requests", "keyframe requests sent"),
)


@dataclass(frozen=True)
class Figure:
    """How one figure of a counter source is exported."""

    name: str
    """Metric name; a counter's is written with `_total`."""
    kind: Literal["counter", "gauge"]
    help: str


def _counter(name: str, text: str) -> Figure:
    return Figure(name, "counter", text)


def _gauge(name: str, text: str) -> Figure:
    return Figure(name, "gauge", text)


SOURCES: dict[str, dict[str, Figure]] = {
    "janus_events": {  # janus_bridge/intake.py: IntakeStats, all monotonic
        "http_requests": _counter(
            "callvault_janus_event_http_requests", "HTTP requests to the Janus event endpoint (sampleevh)"
        ),
        "ws_connections": _counter(
            "callvault_janus_event_ws_connections", "WebSocket connections of Janus's wsevh event handler"
        ),
        "ws_messages": _counter("callvault_janus_event_ws_messages", "WebSocket messages from wsevh"),
        "received": _counter("callvault_janus_events_received", "well-formed Janus events received"),
        "malformed": _counter(
            "callvault_janus_events_malformed", "malformed Janus events, and bodies that were not JSON"
        ),
        "unauthorized": _counter(
            "callvault_janus_event_requests_unauthorized",
            "event requests and connections refused for missing or wrong credentials",
        ),
        "bad_requests": _counter(
            "callvault_janus_event_requests_refused",
            "event bodies refused whole: not JSON, nested too deep, too many events",
        ),
        "delivered": _counter("callvault_janus_events_delivered", "Janus events handled by the bridge"),
        "callback_errors": _counter(
            "callvault_janus_event_batch_errors", "batches of Janus events the bridge failed to handle"
        ),
        "dropped_events": _counter(
            "callvault_janus_events_dropped", "Janus events dropped: the queue was full, or at shutdown"
        ),
    },
    "janus_bridge": {  # janus_bridge/bridge.py: JanusBridge.counters()
        "errors": _counter("callvault_janus_bridge_errors", "errors of the Janus bridge"),
        "forwarded_publishers": _gauge(
            "callvault_janus_forwarded_publishers", "publishers whose media Janus forwards to CallVault now"
        ),
        "unconfirmed_events": _counter(
            "callvault_janus_events_unconfirmed", "Janus events ignored: Janus's API did not confirm them"
        ),
        "known_publishers": _gauge(
            "callvault_janus_known_publishers", "publishers the bridge knows now (recorded or not)"
        ),
        "forgotten_publishers": _counter(
            "callvault_janus_publishers_forgotten", "publishers forgotten to keep the bridge's state bounded"
        ),
    },
    "composites": {  # postprocess/compositor.py: Compositor.stats()
        "pending": _gauge("callvault_composites_pending", "recordings whose composites are to be built"),
        "built": _counter("callvault_composites_built", "composites built"),
        "failed": _counter("callvault_composites_failed", "composites that could not be built"),
    },
    "recorders": {  # recorder/fleet/node.py: FleetNode.counters()
        "alive": _gauge("callvault_recorders_alive", "recorder nodes of the fleet sending heartbeats"),
        "dead": _gauge(
            "callvault_recorders_dead", "recorder nodes silent for longer than fleet.dead_after_seconds"
        ),
        "recordings_failed": _counter(
            "callvault_recordings_failed_by_peer", "recordings of dead recorders this node marked failed"
        ),
    },
    "transcripts": {  # recorder/transcripts/service.py: Transcriber.stats()
        "pending": _gauge("callvault_transcript_jobs_pending", "transcript and redaction jobs to do"),
        "done": _counter("callvault_transcript_jobs_done", "transcript and redaction jobs done"),
        "failed": _counter("callvault_transcript_jobs_failed", "transcript and redaction jobs that failed"),
    },
}
"""Every figure of the counter sources `callvault serve` hands to the API, with its metric."""

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
"""Seconds: from a fraction of a second (all is well) to a day (an outage of the store or the receiver)."""
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Totals:
    """Monotonic totals that outlive tracks: finished tracks' counters, segment and upload bytes.
    Updated on the event loop, read by the collector (in a scrape thread): guarded by a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.finished = dict.fromkeys((name for name, _ in TRACK_COUNTERS), 0)
        self.segments = 0
        self.bytes_written = 0
        self.uploads = 0
        self.bytes_uploaded = 0

    def segment_closed(self, segment: SegmentInfo) -> None:
        with self.lock:
            self.segments += 1
            self.bytes_written += segment.size

    def track_finished(self, summary: TrackSummary) -> None:
        with self.lock:
            for name in self.finished:
                self.finished[name] += int(getattr(summary, name))

    def uploaded(self, job: UploadJob, result: PutResult) -> None:
        with self.lock:
            self.uploads += 1
            self.bytes_uploaded += result.size


class Instruments:
    """What is observed as it happens, on `registry`; `watch(archive)` hooks an archive's uploader and
    webhook dispatcher (once each: safe to call again, and again after the archive restarts)."""

    def __init__(self, registry: CollectorRegistry, totals: Totals) -> None:
        self.totals = totals
        self.upload_latency = Histogram(
            "callvault_upload_latency_seconds",
            "from a file queued for upload to it being stored (retries and store outages included)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.time_to_available = Histogram(
            "callvault_recording_available_seconds",
            "from a recording's end to its recording.finished event (every object stored, manifest signed)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.webhook_delivery = Histogram(
            "callvault_webhook_delivery_latency_seconds",
            "from a webhook event to its delivery to an endpoint (retries included)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.webhook_attempt = Histogram(
            "callvault_webhook_attempt_duration_seconds",
            "duration of one webhook POST, until the endpoint's answer or the error",
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.webhook_attempts = Counter(
            "callvault_webhook_attempts",
            "webhook POSTs made, by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self.webhook_failed_attempts = Counter(
            "callvault_webhook_failed_attempts",
            "webhook POSTs that failed (no 2xx answer, connection error or timeout), by endpoint",
            ["endpoint"],
            registry=registry,
        )
        self.webhook_given_up = Counter(
            "callvault_webhook_deliveries_failed",
            "webhook deliveries given up (webhooks.max_retry_seconds passed, or the endpoint was removed)",
            ["endpoint"],
            registry=registry,
        )
        self._watched: weakref.WeakSet[object] = weakref.WeakSet()

    def watch(self, archive: object) -> None:
        """Hook the archive's uploader and dispatcher, when it runs and they are not hooked yet."""
        try:
            running = archive.running  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # not started (yet)
            return
        uploader, dispatcher = running.uploader, running.dispatcher
        if uploader not in self._watched:
            self._watched.add(uploader)
            uploader.on_uploaded.append(self.totals.uploaded)
            uploader.on_uploaded.append(self.uploaded)
        if dispatcher not in self._watched:
            self._watched.add(dispatcher)
            dispatcher.on_published.append(self.published)
            dispatcher.on_attempt.append(self.attempted)
            for endpoint in dispatcher.settings.endpoints:  # every endpoint's series, from 0
                for counter in (self.webhook_attempts, self.webhook_failed_attempts, self.webhook_given_up):
                    counter.labels(endpoint.id)

    def uploaded(self, job: UploadJob, result: PutResult) -> None:
        self.upload_latency.observe(max(0.0, time.time() - job.created_at))

    def published(self, event: WebhookEvent) -> None:
        if event.type is EventType.RECORDING_FINISHED and isinstance(event.data, RecordingFinished):
            waited = (event.timestamp - event.data.finished_at).total_seconds()
            self.time_to_available.observe(max(0.0, waited))

    def attempted(self, report: AttemptReport) -> None:
        endpoint = report.endpoint_id
        if report.attempted:
            self.webhook_attempts.labels(endpoint).inc()
            self.webhook_attempt.observe(report.seconds)
            if report.outcome is not DeliveryState.DELIVERED:
                self.webhook_failed_attempts.labels(endpoint).inc()
        if report.outcome is DeliveryState.DELIVERED:
            self.webhook_delivery.observe(max(0.0, report.since_event))
        elif report.outcome is DeliveryState.FAILED:
            self.webhook_given_up.labels(endpoint).inc()


class CallVaultCollector(Collector):
    def __init__(
        self,
        manager: RecordingManager,
        totals: Totals,
        counters: dict[str, Callable[[], dict[str, int]]] | None = None,
        janus_connected: Callable[[], bool] | None = None,
        instruments: Instruments | None = None,
    ) -> None:
        self.manager = manager
        self.totals = totals
        self.counters = counters if counters is not None else {}
        self.janus_connected = janus_connected
        self.instruments = instruments

    def collect(self) -> Iterator[Metric]:
        m = self.manager
        build = InfoMetricFamily("callvault_build", "the running CallVault's version")
        build.add_metric(
            [],
            {
                "version": __version__,
                "python_version": platform.python_version(),
                "hot_path": native.implementation(),  # 'compiled' (mypyc) or 'pure' (recorder/native.py)
            },
        )
        yield build
        rooms = list(m.rooms.values())
        yield _level("callvault_active_recordings", "recordings in progress", len(rooms))
        yield _level(
            "callvault_active_streams", "tracks being recorded", sum(len(r.session.tracks) for r in rooms)
        )
        yield _level(
            "callvault_paused_recordings",
            "recordings paused as a whole",
            sum(r.paused is not None for r in rooms),
        )
        yield _level("callvault_rtp_ports_in_use", "RTP/RTCP port pairs allocated", m.ports.in_use)
        if self.janus_connected is not None:
            yield _level(
                "callvault_janus_connected",
                "1 while connected to Janus's WebSocket API",
                int(self.janus_connected()),
            )
        live = dict.fromkeys(self.totals.finished, 0)
        for r in rooms:
            for track in list(r.session.tracks.values()):
                summary = track.pipeline.counters()
                for name in live:
                    live[name] += int(getattr(summary, name))
        with self.totals.lock:
            finished = dict(self.totals.finished)
            segments, written = self.totals.segments, self.totals.bytes_written
            uploads, uploaded = self.totals.uploads, self.totals.bytes_uploaded
        for name, text in TRACK_COUNTERS:
            yield _count(f"callvault_{name}", text, finished[name] + live[name])
        yield _count("callvault_segments_closed", "segments closed", segments)
        yield _count("callvault_bytes_written", "bytes of media written in closed segments", written)
        yield from self._archive(uploads, uploaded)
        for source, get in self.counters.items():
            try:
                values = get()
            except Exception:
                log.exception("metrics: counters %s failed", source)
                continue
            yield from _figures(source, values)

    def _archive(self, uploads: int, uploaded: int) -> Iterator[Metric]:
        archive = archive_of(self.manager.sinks)
        if archive is None:
            return
        try:
            running = archive.running
        except RuntimeError:
            return
        if self.instruments is not None:
            self.instruments.watch(archive)  # an archive started after the API: count from now on
        yield _count("callvault_uploads", "objects uploaded by this process", uploads)
        yield _count("callvault_bytes_uploaded", "bytes uploaded by this process", uploaded)
        health = archive.health
        if health is not None:
            yield _level("callvault_upload_pending_jobs", "uploads waiting in the spool", health.pending_jobs)
            yield _level("callvault_upload_failed_jobs", "uploads that failed for good", health.failed_jobs)
            yield _level(
                "callvault_upload_lag_seconds",
                "age of the oldest pending upload",
                health.oldest_pending_seconds or 0.0,
            )
            yield _level("callvault_spool_used_bytes", "bytes held in the upload spool", health.used_bytes)
            yield _level(
                "callvault_spool_accepting", "1 while the spool accepts new recordings", int(health.accepting)
            )
        yield _level(
            "callvault_upload_store_available",
            "0 while the store is unreachable",
            int(running.uploader.store_available),
        )
        try:
            backlog = running.outbox.pending_count()
        except Exception:
            log.exception("metrics: cannot read the webhook outbox")
        else:
            yield _level("callvault_webhook_backlog", "webhook deliveries pending", backlog)
        yield _level(
            "callvault_recordings_unannounced",
            "finished recordings waiting for their uploads before recording.finished",
            len(archive.pending_announcements()),
        )


def _figures(source: str, values: dict[str, int]) -> Iterator[Metric]:
    known = SOURCES.get(source, {})
    for key, value in values.items():
        figure = known.get(key)
        if figure is None:  # a figure added to a source but not to SOURCES: its type is unknown
            name = f"callvault_{_name(source)}_{_name(key)}"
            yield UnknownMetricFamily(name, f"{source} {key}", value=float(value))
        elif figure.kind == "counter":
            yield _count(figure.name, figure.help, value)
        else:
            yield _level(figure.name, figure.help, value)


def _name(source: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in source)


def _level(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


def _count(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=float(value))


class Metrics:
    """The API's registry: the collector, the instruments, prometheus-client's process_* and python_*
    collectors."""

    def __init__(
        self,
        manager: RecordingManager,
        counters: dict[str, Callable[[], dict[str, int]]] | None = None,
        janus_connected: Callable[[], bool] | None = None,
    ) -> None:
        # No `_created` gauge beside every counter and histogram (a process-wide switch).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=False)
        self.totals = Totals()
        self.instruments = Instruments(self.registry, self.totals)
        self.collector = CallVaultCollector(manager, self.totals, counters, janus_connected, self.instruments)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def watch(self, archive: object | None) -> None:
        if archive is not None:
            self.instruments.watch(archive)

    def render(self) -> bytes:
        """The text exposition format (0.0.4)."""
        return generate_latest(self.registry)
