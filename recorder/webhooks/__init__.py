"""Signed webhooks (Standard Webhooks): event payloads, a durable SQLite outbox with a delivery log, and a
dispatcher that delivers in order per recording with retries."""

from recorder.webhooks.dispatcher import AttemptReport, Dispatcher
from recorder.webhooks.events import (
    CompositeFailed,
    CompositeFinished,
    EventType,
    PresignedLink,
    RecordingFailed,
    RecordingFinished,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    Redaction,
    RedactionFailed,
    RedactionFinished,
    TranscriptFailed,
    TranscriptReady,
    WebhookEvent,
    presigned_link,
    presigned_links,
)
from recorder.webhooks.outbox import Attempt, Delivery, DeliveryState, Outbox
from recorder.webhooks.settings import WebhookEndpoint, WebhookSettings
from recorder.webhooks.signing import (
    WebhookVerificationError,
    generate_secret,
    sign,
    signed_headers,
    verify,
)

__all__ = [
    "Attempt",
    "AttemptReport",
    "CompositeFailed",
    "CompositeFinished",
    "Delivery",
    "DeliveryState",
    "Dispatcher",
    "EventType",
    "Outbox",
    "PresignedLink",
    "RecordingFailed",
    "RecordingFinished",
    "RecordingPaused",
    "RecordingResumed",
    "RecordingStarted",
    "Redaction",
    "RedactionFailed",
    "RedactionFinished",
    "TranscriptFailed",
    "TranscriptReady",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookSettings",
    "WebhookVerificationError",
    "generate_secret",
    "presigned_link",
    "presigned_links",
    "sign",
    "signed_headers",
    "verify",
]
