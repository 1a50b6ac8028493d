"""Prometheus metrics (prometheus-client): what the manager, its sessions and the archive know, read at
scrape time by a custom collector on the API's own registry. Parts that are absent (no archive, no
bridge) are skipped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from recorder.api.files import archive_of
from recorder.models import SegmentInfo, TrackSummary
from recorder.service.manager import RecordingManager
from recorder.storage.base import PutResult
from recorder.storage.spool import UploadJob

log = logging.getLogger(__name__)

TRACK_COUNTERS = (
    ("packets_received", "RTP packets received"),
    ("packets_lost", "RTP packets lost"),
    ("packets_paused", "RTP packets dropped unread while paused"),
    ("frames", "frames recorded"),
    ("frames_dropped", "frames dropped waiting for a keyframe"),
    ("keyframe_requests", "keyframe requests sent"),
)


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


class CallVaultCollector(Collector):
    def __init__(
        self,
        manager: RecordingManager,
        totals: Totals,
        counters: dict[str, Callable[[], dict[str, int]]] | None = None,
    ) -> None:
        self.manager = manager
        self.totals = totals
        self.counters = counters if counters is not None else {}
        self._hooked: set[int] = set()

    def collect(self) -> Iterator[Metric]:
        m = self.manager
        rooms = list(m.rooms.values())
        yield _gauge("callvault_active_recordings", "recordings in progress", len(rooms))
        yield _gauge(
            "callvault_active_streams", "tracks being recorded", sum(len(r.session.tracks) for r in rooms)
        )
        yield _gauge(
            "callvault_paused_recordings",
            "recordings paused as a whole",
            sum(r.paused is not None for r in rooms),
        )
        yield _gauge("callvault_rtp_ports_in_use", "RTP/RTCP port pairs allocated", m.ports.in_use)
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
            yield _counter(f"callvault_{name}", text, finished[name] + live[name])
        yield _counter("callvault_segments_closed", "segments closed", segments)
        yield _counter("callvault_bytes_written", "bytes of media written in closed segments", written)
        yield from self._archive(uploads, uploaded)
        for source, get in self.counters.items():
            family = GaugeMetricFamily(f"callvault_{_name(source)}", f"{source} counters", labels=["counter"])
            try:
                values = get()
            except Exception:
                log.exception("metrics: counters %s failed", source)
                continue
            for counter, value in values.items():
                family.add_metric([counter], float(value))
            yield family

    def _archive(self, uploads: int, uploaded: int) -> Iterator[Metric]:
        archive = archive_of(self.manager.sinks)
        if archive is None:
            return
        try:
            running = archive.running
        except RuntimeError:
            return
        if id(running.uploader) not in self._hooked:  # count uploads from now on
            self._hooked.add(id(running.uploader))
            running.uploader.on_uploaded.append(self.totals.uploaded)
        yield _counter("callvault_uploads", "objects uploaded by this process", uploads)
        yield _counter("callvault_bytes_uploaded", "bytes uploaded by this process", uploaded)
        health = archive.health
        if health is not None:
            yield _gauge("callvault_upload_pending_jobs", "uploads waiting in the spool", health.pending_jobs)
            yield _gauge("callvault_upload_failed_jobs", "uploads that failed for good", health.failed_jobs)
            yield _gauge(
                "callvault_upload_lag_seconds",
                "age of the oldest pending upload",
                health.oldest_pending_seconds or 0.0,
            )
            yield _gauge("callvault_spool_used_bytes", "bytes held in the upload spool", health.used_bytes)
            yield _gauge(
                "callvault_spool_accepting", "1 while the spool accepts new recordings", int(health.accepting)
            )
        yield _gauge(
            "callvault_upload_store_available",
            "0 while the store is unreachable",
            int(running.uploader.store_available),
        )
        try:
            backlog = running.outbox.pending_count()
        except Exception:
            log.exception("metrics: cannot read the webhook outbox")
        else:
            yield _gauge("callvault_webhook_backlog", "webhook deliveries pending", backlog)
        yield _gauge(
            "callvault_recordings_unannounced",
            "finished recordings waiting for their uploads before recording.finished",
            len(archive.pending_announcements()),
        )


def _name(source: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in source)


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=float(value))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=float(value))


def new_registry(collector: CallVaultCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
