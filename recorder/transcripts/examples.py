"""Examples of transcript.ready, redaction.finished, transcript.failed and redaction.failed (the OpenAPI
document's webhooks section)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from recorder.manifest import PreviousRevision
from recorder.manifest.model import StoredObject
from recorder.webhooks import (
    EventType,
    Redaction,
    RedactionFailed,
    RedactionFinished,
    TranscriptFailed,
    TranscriptReady,
    WebhookEvent,
)
from recorder.webhooks import examples as hooks


def _object(name: str, content_type: str, size: int) -> StoredObject:
    return StoredObject(
        name=name, key=hooks.PREFIX + name, size=size, content_type=content_type, sha256=hooks._sha(name)
    )


def payloads() -> dict[EventType, WebhookEvent]:
    ids: dict[str, Any] = {
        "recording_id": hooks.RECORDING_ID,
        "room_id": hooks.ROOM_ID,
        "call_id": hooks.CALL_ID,
    }
    shown = hooks.manifest()
    transcript = [
        _object("transcript.json", "application/json", 18_204),
        _object("transcript.vtt", "text/vtt", 4_310),
    ]
    redacted = [
        _object("redacted-1/1002-audio-1.webm", "audio/webm", 1_204_311),
        _object("redacted-1/redactions.json", "application/json", 412),
        _object("redacted-1/transcript.json", "application/json", 18_190),
        _object("redacted-1/transcript.vtt", "text/vtt", 4_302),
    ]
    previous = PreviousRevision(
        revision=1, name="manifest.1.json", signature="manifest.1.json.sig", sha256=hooks._sha("manifest.1")
    )
    revised = shown.model_copy(
        update={"revision": 2, "previous": previous, "objects": [*shown.objects, *transcript, *redacted]}
    )
    at = hooks.FINISHED + timedelta(seconds=50)
    ready = TranscriptReady(
        **ids, ready_at=at, model="tiny.en", segments=42, words=388, objects=transcript, manifest=revised
    )
    done = RedactionFinished(
        **ids,
        finished_at=at,
        redactions=[
            Redaction(start=61.25, end=68.9, reason="card-number", rule="auto"),
            Redaction(start=71.1, end=72.6, reason="card-expiry", rule="auto"),
        ],
        objects=redacted,
        manifest=revised,
        original_kept=True,
    )
    job = hooks.RECORDING_ID
    failed = TranscriptFailed(
        **ids,
        failed_at=at,
        job_id=job,
        error="bob-audio-1.webm: cannot decode the audio track: Invalid data found when processing input",
        redaction_asked=True,
    )
    refused = RedactionFailed(
        **ids,
        failed_at=at,
        job_id=f"{job}.redaction-1780000000000",
        error="no audio track to redact",
        rule="manual",
        redactions=[Redaction(start=61.5, end=78.0, reason="customer read a card", rule="manual")],
    )
    return {
        EventType.TRANSCRIPT_READY: WebhookEvent.of(ready, at),
        EventType.REDACTION_FINISHED: WebhookEvent.of(done, at),
        EventType.TRANSCRIPT_FAILED: WebhookEvent.of(failed, at),
        EventType.REDACTION_FAILED: WebhookEvent.of(refused, at),
    }
