"""The webhook dispatcher: an asyncio task POSTing due outbox deliveries with aiohttp.

A 2xx answer delivers; anything else (other status, connection error, timeout) is retried with exponential
backoff, `retry_initial * 2**(attempt-1)` capped at `retry_max` (+ up to 10 % jitter), until
`max_retry_seconds` after the event was created, then the delivery is failed (logged, kept in the log).
Only the oldest pending delivery per (endpoint, recording) is attempted (see outbox.py), and deliveries of
different pairs run concurrently (`concurrency`). The body and webhook-id are the same on every attempt;
webhook-timestamp and the signature are those of the attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from recorder.storage.uploader import backoff_delay
from recorder.webhooks.events import WebhookEvent
from recorder.webhooks.outbox import Delivery, DeliveryState, Outbox
from recorder.webhooks.settings import WebhookSettings
from recorder.webhooks.signing import signed_headers

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class AttemptReport:
    """What became of one delivery attempt (what the metrics count)."""

    endpoint_id: str
    event_type: str
    outcome: DeliveryState
    """delivered; pending (to be retried); failed (given up)."""
    attempted: bool
    """False when the delivery was given up without a POST (its endpoint is no longer configured)."""
    seconds: float
    """How long the POST took."""
    since_event: float
    """Seconds from the event's publication to the end of this attempt."""


class Dispatcher:
    def __init__(self, outbox: Outbox, settings: WebhookSettings) -> None:
        self.outbox = outbox
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self.on_published: list[Callable[[WebhookEvent], None]] = []
        """Called (on the loop) with each event newly stored in the outbox."""
        self.on_attempt: list[Callable[[AttemptReport], None]] = []
        """Called (on the loop) after each attempt is logged in the outbox."""

    async def publish(self, event: WebhookEvent, msg_id: str | None = None) -> str:
        """Store the event durably for every interested endpoint and wake the task; returns the webhook-id.
        With a fixed `msg_id`, publishing the same event again (after a restart) adds nothing."""
        stored, new = await asyncio.to_thread(self.outbox.store, event, self.settings.endpoints, msg_id)
        self._wake.set()
        if new:
            _tell(self.on_published, event, "published")
        return stored

    async def start(self) -> None:
        """Start delivering; deliveries pending from earlier runs resume."""
        if self._task is not None:
            return
        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run(), name="webhook dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_idle(self, within: float = 30.0) -> bool:
        """Wait until nothing is pending; False after `within` seconds."""
        deadline = time.monotonic() + within
        while await asyncio.to_thread(self.outbox.pending_count):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel
                async with asyncio.timeout(min(left, 0.5)):
                    await self._progress.wait()
        return True

    async def _run(self) -> None:
        while True:
            try:
                attempted = await self.run_once()
            except Exception:
                log.exception("webhooks: unexpected dispatcher error")
                attempted = 0
            if attempted:
                continue
            wait = self.settings.poll_interval
            next_due = await asyncio.to_thread(self.outbox.next_due_at)
            if next_due is not None:
                wait = min(wait, max(0.01, next_due - time.time()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow a cancel
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def run_once(self) -> int:
        """Attempt every due head delivery once; returns how many were attempted."""
        heads = await asyncio.to_thread(self.outbox.due_heads, self.settings.concurrency)
        if heads:
            await asyncio.gather(*(self._deliver(d) for d in heads))
            self._progress.set()
        return len(heads)

    async def _deliver(self, delivery: Delivery) -> None:
        endpoint = self.settings.endpoint(delivery.endpoint_id)
        if endpoint is None:
            await asyncio.to_thread(self.outbox.fail, delivery, "endpoint no longer configured")
            log.error(
                "webhooks: %s to %s: endpoint no longer configured", delivery.msg_id, delivery.endpoint_id
            )
            self._report(delivery, DeliveryState.FAILED, attempted=False, seconds=0.0)
            return
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession()
        headers = signed_headers(endpoint.secret.get_secret_value(), delivery.msg_id, delivery.body)
        headers["content-type"] = "application/json"
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            async with session.post(
                endpoint.url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                await response.read()
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = (time.monotonic() - started) * 1000
        if error is None:
            outcome, retry_at = DeliveryState.DELIVERED, None
        elif time.time() - delivery.created_at >= self.settings.max_retry_seconds:
            outcome, retry_at = DeliveryState.FAILED, None
            log.error(
                "webhooks: giving up %s (%s, recording %s) to %s after %d attempts: %s",
                delivery.msg_id,
                delivery.type,
                delivery.recording_id,
                endpoint.id,
                delivery.attempts + 1,
                error,
            )
        else:
            outcome = DeliveryState.PENDING
            delay = backoff_delay(delivery.attempts + 1, self.settings.retry_initial, self.settings.retry_max)
            retry_at = min(time.time() + delay, delivery.created_at + self.settings.max_retry_seconds)
            log.info(
                "webhooks: %s to %s failed (%s), retry in %.1fs", delivery.msg_id, endpoint.id, error, delay
            )
        await asyncio.to_thread(
            self.outbox.record_attempt,
            delivery,
            status_code=status,
            error=error,
            duration_ms=duration_ms,
            outcome=outcome,
            retry_at=retry_at,
        )
        self._report(delivery, outcome, attempted=True, seconds=duration_ms / 1000)

    def _report(self, delivery: Delivery, outcome: DeliveryState, attempted: bool, seconds: float) -> None:
        if self.on_attempt:
            report = AttemptReport(
                endpoint_id=delivery.endpoint_id,
                event_type=delivery.type,
                outcome=outcome,
                attempted=attempted,
                seconds=seconds,
                since_event=time.time() - delivery.created_at,
            )
            _tell(self.on_attempt, report, "attempt")


def _tell(listeners: list[Callable[[T], None]], what: T, name: str) -> None:
    for listener in listeners:
        try:
            listener(what)
        except Exception:
            log.exception("webhooks: a listener of the %s failed", name)
