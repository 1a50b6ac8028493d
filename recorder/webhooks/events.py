"""Webhook event types and their typed payloads.

A request body is the JSON envelope `{"type": <event type>, "timestamp": <ISO 8601 UTC>, "data": {...}}`
(the Standard Webhooks convention), `data` being one of the payload models below.
`recording.finished` carries the signed manifest and presigned download links (manifest, signature and
every object) that expire after the configured time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, create_model

from recorder.manifest.model import MANIFEST_NAME, SIGNATURE_NAME, Manifest, Participant, StoredObject
from recorder.storage.base import ObjectStore


class EventType(StrEnum):
    RECORDING_STARTED = "recording.started"
    RECORDING_PAUSED = "recording.paused"
    RECORDING_RESUMED = "recording.resumed"
    RECORDING_FINISHED = "recording.finished"
    RECORDING_FAILED = "recording.failed"
    COMPOSITE_FINISHED = "composite.finished"
    COMPOSITE_FAILED = "composite.failed"
    RECORDING_DELETED = "recording.deleted"
    EXPORT_FINISHED = "export.finished"
    EXPORT_FAILED = "export.failed"
    TRANSCRIPT_READY = "transcript.ready"
    REDACTION_FINISHED = "redaction.finished"
    TRANSCRIPT_FAILED = "transcript.failed"
    REDACTION_FAILED = "redaction.failed"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: ClassVar[EventType]
    recording_id: str
    room_id: str | None = None
    call_id: str | None = None


class RecordingStarted(_Payload):
    """A recording started, with the participants known then."""

    event_type = EventType.RECORDING_STARTED
    kind: Literal["recording.started"] = "recording.started"
    started_at: datetime
    participants: list[Participant] = Field(default_factory=list)


class RecordingPaused(_Payload):
    """A recording was paused (or one participant's tracks: `reason` then starts 'participant <id>:'):
    nothing of it is recorded until it is resumed."""

    event_type = EventType.RECORDING_PAUSED
    kind: Literal["recording.paused"] = "recording.paused"
    paused_at: datetime
    by: str | None = None
    reason: str | None = None


class RecordingResumed(_Payload):
    """A paused recording (or participant) is recorded again."""

    event_type = EventType.RECORDING_RESUMED
    kind: Literal["recording.resumed"] = "recording.resumed"
    resumed_at: datetime
    by: str | None = None


class PresignedLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Path relative to the recording folder.")
    key: str
    url: str
    expires_at: datetime


class RecordingFinished(_Payload):
    """A recording is stored whole: its signed manifest and presigned links to the manifest, its
    signature and every object."""

    event_type = EventType.RECORDING_FINISHED
    kind: Literal["recording.finished"] = "recording.finished"
    finished_at: datetime
    manifest: Manifest
    links: list[PresignedLink] = Field(
        default_factory=list, description="manifest.json, manifest.json.sig, then every object."
    )


class RecordingFailed(_Payload):
    """A recording could not be stored whole: where it failed and why (what could be stored is
    stored; local files are kept)."""

    event_type = EventType.RECORDING_FAILED
    kind: Literal["recording.failed"] = "recording.failed"
    failed_at: datetime
    stage: str = Field(description="Where it failed: 'ingest', 'mux', 'upload', 'manifest' ...")
    error: str


class CompositeFinished(_Payload):
    """One composite of the recording is stored and listed in its manifest's new revision."""

    event_type = EventType.COMPOSITE_FINISHED
    kind: Literal["composite.finished"] = "composite.finished"
    finished_at: datetime
    object: StoredObject
    link: PresignedLink | None = None
    manifest: Manifest | None = Field(default=None, description="The manifest revision that lists it.")


class CompositeFailed(_Payload):
    """Composites of the recording could not be built or stored (the originals are not affected)."""

    event_type = EventType.COMPOSITE_FAILED
    kind: Literal["composite.failed"] = "composite.failed"
    failed_at: datetime
    error: str


class RecordingDeleted(_Payload):
    """Retention deleted objects of the recording (recorder/lifecycle): `whole` when nothing of it is left
    in the store (the catalog keeps a tombstone), else only the kinds that were due (e.g. the originals,
    the composite kept longer)."""

    event_type = EventType.RECORDING_DELETED
    kind: Literal["recording.deleted"] = "recording.deleted"
    deleted_at: datetime
    whole: bool
    rules: list[str] = Field(description="The retention rules that made these objects due.")
    objects: list[str] = Field(description="Names of the objects deleted (relative to the recording).")


class TranscriptReady(_Payload):
    """The recording's transcript (transcript.json, transcript.vtt) is stored and listed in its
    manifest's new revision (recorder/transcripts), masked where card numbers were redacted."""

    event_type = EventType.TRANSCRIPT_READY
    kind: Literal["transcript.ready"] = "transcript.ready"
    ready_at: datetime
    model: str = Field(description="The speech model ('tiny.en' for the packaged one).")
    segments: int = Field(ge=0)
    words: int = Field(ge=0)
    objects: list[StoredObject] = Field(default_factory=list, description="As the revision lists them.")
    manifest: Manifest | None = Field(default=None, description="The revision (None without an archive).")


class Redaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(ge=0.0, description="Seconds on the recording's timeline.")
    end: float = Field(ge=0.0)
    reason: str = Field(
        description="'card-number', 'card-expiry', 'card-security-code', or an admin's words."
    )
    rule: str = Field(description="'auto' (found in the transcript) or 'manual' (an admin, through the API).")


class RedactionFinished(_Payload):
    """A redacted copy of the recording is stored: every audio track with the intervals silenced (under
    `redacted-<n>/`), the masked transcript and the list of redactions, in the manifest's new revision."""

    event_type = EventType.REDACTION_FINISHED
    kind: Literal["redaction.finished"] = "redaction.finished"
    finished_at: datetime
    redactions: list[Redaction]
    objects: list[StoredObject] = Field(default_factory=list, description="As the revision lists them.")
    manifest: Manifest | None = Field(default=None, description="The revision (None without an archive).")
    original_kept: bool = Field(description="Whether the unredacted tracks are kept.")


class _JobPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: ClassVar[EventType]
    job_id: str
    schedule_id: str | None = Field(default=None, description="The schedule that started it, if any.")

    @property
    def recording_id(self) -> str:
        """What the outbox orders deliveries by (per recording; an export's events by job)."""
        return f"export:{self.job_id}"


class ExportFinished(_JobPayload):
    """An export job delivered its evidence bundles (one per recording) and its signed index."""

    event_type = EventType.EXPORT_FINISHED
    kind: Literal["export.finished"] = "export.finished"
    finished_at: datetime
    recordings: int
    destination: str = Field(description="'download', or 's3:<destination name>/<prefix>'.")
    index_sha256: str = Field(description="SHA-256 of the export's signed index (export.json).")


class ExportFailed(_JobPayload):
    """An export job stopped: why (bundles already written stay where they are)."""

    event_type = EventType.EXPORT_FAILED
    kind: Literal["export.failed"] = "export.failed"
    failed_at: datetime
    error: str


class TranscriptFailed(_Payload):
    """The recording's transcript could not be made (no usable model, an audio track that cannot be
    decoded, a worker that died or ran out of time): the recording itself is not affected."""

    event_type = EventType.TRANSCRIPT_FAILED
    kind: Literal["transcript.failed"] = "transcript.failed"
    failed_at: datetime
    job_id: str = Field(description="The transcript job (its audit entries carry the same id).")
    error: str
    redaction_asked: bool = Field(description="Whether a redaction was asked too (it was not made either).")


class RedactionFailed(_Payload):
    """A redaction (automatic, or an admin's interval) could not be made: nothing was silenced and the
    unredacted originals are kept. `redactions` is what was asked (empty when the card numbers were to
    be found in a transcript that could not be made)."""

    event_type = EventType.REDACTION_FAILED
    kind: Literal["redaction.failed"] = "redaction.failed"
    failed_at: datetime
    job_id: str = Field(description="The redaction job (its audit entries carry the same id).")
    error: str
    rule: Literal["auto", "manual"]
    redactions: list[Redaction] = Field(default_factory=list, description="The intervals asked for.")


Payload = Annotated[
    RecordingStarted
    | RecordingPaused
    | RecordingResumed
    | RecordingFinished
    | RecordingFailed
    | CompositeFinished
    | CompositeFailed
    | RecordingDeleted
    | ExportFinished
    | ExportFailed
    | TranscriptReady
    | RedactionFinished
    | TranscriptFailed
    | RedactionFailed,
    Field(discriminator="kind"),
]


PAYLOADS: tuple[type[_Payload] | type[_JobPayload], ...] = (
    RecordingStarted,
    RecordingPaused,
    RecordingResumed,
    RecordingFinished,
    RecordingFailed,
    CompositeFinished,
    CompositeFailed,
    RecordingDeleted,
    ExportFinished,
    ExportFailed,
    TranscriptReady,
    RedactionFinished,
    TranscriptFailed,
    RedactionFailed,
)

_TIMESTAMP = "When the event was published (RFC 3339, UTC); the same on every delivery attempt."


class WebhookEvent(BaseModel):
    """The request body."""

    model_config = ConfigDict(extra="forbid")

    type: EventType
    timestamp: datetime = Field(description=_TIMESTAMP)
    data: Payload

    @classmethod
    def of(cls, data: _Payload | _JobPayload, timestamp: datetime | None = None) -> WebhookEvent:
        return cls.model_validate(
            {"type": data.event_type, "timestamp": timestamp or datetime.now(UTC), "data": data}
        )

    def body(self) -> bytes:
        return self.model_dump_json().encode()


def _body_model(payload: type[_Payload] | type[_JobPayload]) -> type[BaseModel]:
    kind = payload.event_type.value
    return create_model(
        f"{payload.__name__}Event",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"The body of a {kind} webhook (a WebhookEvent whose data is a {payload.__name__}).",
        type=(cast(Any, Literal)[kind], ...),
        timestamp=(datetime, Field(description=_TIMESTAMP)),
        data=(payload, ...),
    )


EVENT_BODIES: dict[EventType, type[BaseModel]] = {p.event_type: _body_model(p) for p in PAYLOADS}
"""Each event type's body as a model of its own (the same payload models, `type` fixed): the OpenAPI
document's `webhooks` section is generated from these."""


def presigned_links(
    store: ObjectStore, manifest: Manifest, key_for_name: dict[str, str], expires: timedelta
) -> list[PresignedLink]:
    """Links to the manifest, its signature and every object. `key_for_name` must hold the keys of
    manifest.json and manifest.json.sig; object keys come from the manifest. Blocking (S3 presigning is
    local computation, but LocalStore resolves paths): call in a thread from the event loop."""
    names = [(MANIFEST_NAME, key_for_name[MANIFEST_NAME]), (SIGNATURE_NAME, key_for_name[SIGNATURE_NAME])]
    names += [(o.name, o.key) for o in manifest.objects]
    return [presigned_link(store, name, key, expires) for name, key in names]


def presigned_link(store: ObjectStore, name: str, key: str, expires: timedelta) -> PresignedLink:
    """A link to one object (blocking, as `presigned_links`)."""
    return PresignedLink(
        name=name, key=key, url=store.presign_get(key, expires), expires_at=datetime.now(UTC) + expires
    )
