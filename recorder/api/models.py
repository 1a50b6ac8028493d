"""Request and response bodies of the control API. The OpenAPI document is generated from these."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from recorder.api.audit import AuditEntry
from recorder.api.auth import Role
from recorder.api.times import Timestamp
from recorder.crypto.age import CryptoError, check_recipient
from recorder.fleet.models import NodeState, RecordingFailure
from recorder.manifest.model import Manifest
from recorder.names import SAFE_ID_PATTERN

# Patterns are matched whole (pydantic's regex engine: `$` is the end of the text, never before a final
# newline); code matching them with Python's `re` must use fullmatch.
ID_PATTERN = f"^{SAFE_ID_PATTERN}$"  # the one allow-list of names (recorder/names.py), anchored for schemas
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(max_length=512)]


def _closed_map(schema: dict[str, Any]) -> None:
    """A map whose keys match a pattern, as JSON Schema says it and generated clients read it: the keys'
    pattern in `propertyNames`, the values' schema in `additionalProperties` (pydantic writes
    `patternProperties`, which lets any other key through and which openapi-python-client ignores: its
    models would drop every tag)."""
    patterns = schema.pop("patternProperties", None)
    if patterns:
        ((pattern, values),) = patterns.items()
        schema["propertyNames"] = {"pattern": pattern}
        schema["additionalProperties"] = values


_TAG_MAP = Field(max_length=64, json_schema_extra=_closed_map)
Tags = Annotated[dict[TagKey, TagValue], _TAG_MAP]
TagPatch = Annotated[dict[TagKey, TagValue | None], _TAG_MAP]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: object) -> object:
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with its offset, like 2024-05-01T12:00:00Z")
    return value


def _comparable(value: datetime) -> datetime:
    try:
        value.timestamp()
    except (OverflowError, ValueError):
        raise ValueError("date-time out of range") from None
    return value


DateTime = Annotated[datetime, BeforeValidator(_rfc3339_text), AfterValidator(_comparable)]
"""An RFC 3339 date-time (`format: date-time`): a text with its offset, never a number or a bare date."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecordingStatus(StrEnum):
    RECORDING = "recording"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    DELETED = "deleted"


class Output(StrEnum):
    """What a room's recording produces: per-participant tracks (always), a composite (postprocess)."""

    TRACKS = "tracks"
    COMPOSITE = "composite"


# -- recordings ----------------------------------------------------------------------------------------


class ParticipantOut(_Body):
    id: str
    display_name: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    joined_at: Timestamp | None = None
    left_at: Timestamp | None = None


class PauseOut(_Body):
    participant: str | None = Field(default=None, description="None: the whole recording was paused.")
    start_time: Timestamp
    end_time: Timestamp | None = None
    by: str | None = None
    reason: str | None = None


class TrackOut(_Body):
    name: str
    participant: str | None = None
    kind: str
    codec: str
    state: str
    file: str | None = None
    frames: int
    packets_lost: int
    packets_paused: int
    bytes: int


class TranscriptHit(_Body):
    speaker: str = Field(description="Participant id: whose track it was heard on.")
    start: float = Field(description="Seconds from the start of the recording (its timeline's zero).")
    end: float
    text: str = Field(description="The transcript segment that matched (as masked by redaction).")


class RecordingOut(_Body):
    recording_id: str
    room_id: str | None = None
    call_id: str | None = None
    status: RecordingStatus
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration: float | None = Field(default=None, description="Seconds, once finished.")
    tracks: int
    bytes: int = Field(description="Bytes of media written (closed segments).")
    metadata: dict[str, str] = Field(default_factory=dict)
    participants: list[ParticipantOut] = Field(default_factory=list)
    legal_hold: bool = False
    legal_hold_reason: str | None = None
    retention_until: Timestamp | None = Field(
        default=None, description="Until when it cannot be deleted (api.retention_days after its end)."
    )
    deleted_at: Timestamp | None = None
    transcript_hits: list[TranscriptHit] = Field(
        default_factory=list,
        description="With q=: the transcript segments that match, by start (at most 5); else empty.",
    )


class RecordingDetail(RecordingOut):
    recorder: str | None = Field(default=None, description="The recorder node that recorded it (fleet).")
    failure: RecordingFailure | None = Field(
        default=None,
        description="Set when its recorder went silent mid-call: why, and the segments recovered (fleet).",
    )
    pauses: list[PauseOut] = Field(default_factory=list)
    track_list: list[TrackOut] = Field(default_factory=list)
    manifest: Manifest | None = Field(default=None, description="The signed manifest, once there is one.")


class RecordingPage(_Body):
    items: list[RecordingOut]
    total: int = Field(
        description="How many recordings match: exact when total_exact is true; otherwise a lower bound"
        " (more matched than the server counts, api.search_count_limit; the console shows 10,000+)."
    )
    total_exact: bool = Field(
        default=True, description="False when total is a lower bound (more matches than the count limit)."
    )
    limit: int
    offset: int
    next_offset: int | None = None


class SortField(StrEnum):
    """What GET /v1/recordings can sort by (`sort`); ties are broken by recording_id in the same order."""

    STARTED_AT = "started_at"
    FINISHED_AT = "finished_at"
    DURATION = "duration"
    ROOM = "room"
    PARTICIPANTS = "participants"
    BYTES = "bytes"
    STATUS = "status"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class SearchQuery(_Body):
    q: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="Words said in the call: recordings whose transcript has a segment holding every word"
        " (case and accents ignored); each item lists those segments in transcript_hits.",
    )
    room: Id | None = None
    participant: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="Participant id or display name (exact)."
    )
    call_id: Id | None = None
    tag: list[Annotated[str, StringConstraints(min_length=1, max_length=600)]] = Field(
        default_factory=list,
        description="'key' (tag present) or 'key:value'; repeat for AND. Matches recording and"
        " participant tags.",
        max_length=16,
    )
    status: RecordingStatus | None = None
    started_after: DateTime | None = Field(default=None, description="RFC 3339 date-time.")
    started_before: DateTime | None = Field(default=None, description="RFC 3339 date-time.")
    min_duration: float | None = Field(default=None, ge=0, le=1e9)
    max_duration: float | None = Field(default=None, ge=0, le=1e9)
    sort: SortField = Field(
        default=SortField.STARTED_AT,
        description="Sort by: started_at, finished_at, duration (a live recording counts as finishing"
        " now), room, participants (how many), bytes, status; ties by recording_id, so pages"
        " of one query never repeat or skip a recording.",
    )
    order: SortOrder = Field(default=SortOrder.DESC, description="asc or desc.")
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class MetadataPatch(_Body):
    call_id: Id | None = Field(
        default=None, description="Links the recordings of one call (transfers between rooms)."
    )
    metadata: TagPatch = Field(default_factory=dict, description="Tags to set; null removes a tag.")


class ParticipantPatch(_Body):
    metadata: TagPatch = Field(default_factory=dict, description="Tags to set; null removes a tag.")


class PauseRequest(_Body):
    reason: Reason = Field(description="Why (recorded in the manifest, webhook and audit log).")


class PauseState(_Body):
    recording_id: str
    participant: str | None = None
    paused: bool


class LegalHold(_Body):
    hold: bool
    reason: Reason | None = None


class FileLink(_Body):
    name: str
    size: int | None = None
    url: str = Field(description="Presigned store URL, or this API's authenticated file URL.")
    presigned: bool
    expires_at: Timestamp | None = Field(default=None, description="When a presigned URL expires.")
    encryption: Literal["age"] | None = Field(
        default=None,
        description="'age': the URL gives the stored ciphertext (decrypt with `age -d` or `callvault"
        " decrypt`); the service has no playback identity (archive.encryption) to decrypt it for you.",
    )


class FileLinks(_Body):
    recording_id: str
    files: list[FileLink]


class VerifyProblemOut(_Body):
    kind: str
    name: str
    detail: str


class VerifyResult(_Body):
    recording_id: str
    target: str
    ok: bool
    objects_checked: int
    key_id: str | None = None
    problems: list[VerifyProblemOut]


class Deleted(_Body):
    recording_id: str
    deleted_at: Timestamp
    objects_deleted: int


# -- policy and rooms ------------------------------------------------------------------------------------


def _recipient(value: str) -> str:
    try:
        return check_recipient(value)
    except CryptoError as exc:
        raise ValueError(str(exc)) from None


AgeRecipient = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_recipient)]


class RoomPolicy(_Body):
    record: bool | None = Field(default=None, description="On, off, or None to follow the default.")
    outputs: list[Output] = Field(default_factory=lambda: [Output.TRACKS], max_length=4)
    metadata: Tags = Field(default_factory=dict, description="Tags every recording of the room gets.")
    capture: bool | None = Field(
        default=None,
        description="Keep every RTP and RTCP packet of the room's recordings in pcapng captures (recorded as"
        " the recording's `capture` tag); None follows `recorder.capture`.",
    )
    encryption_recipients: list[AgeRecipient] | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="age recipients ('age1...' or SSH public keys) the room's recordings are encrypted to,"
        " in place of archive.encryption.recipients (its escrow recipients are added). None follows the"
        " service; a room cannot turn encryption off.",
    )
    transcribe: bool | None = Field(
        default=None,
        description="Transcribe the room's recordings when they finish (transcript.json and .vtt in the"
        " manifest's next revision, searchable with q=); None follows `transcripts.enabled`.",
    )
    redact: bool | None = Field(
        default=None,
        description="After transcription, silence spoken card numbers (and expiry, security code) in a"
        " redacted copy of the room's recordings (implies transcribe); None follows `transcripts.redact`.",
    )


class DefaultPolicy(_Body):
    default: Literal["all", "enabled"] = Field(
        description="'all': record every room unless turned off; 'enabled': only rooms turned on."
    )


class PolicyOut(_Body):
    default: Literal["all", "enabled"]
    rooms: dict[str, RoomPolicy]


class StartRequest(_Body):
    call_id: Id | None = Field(
        default=None,
        description="Call id of the room's recording (now, or the next one): links the recordings of a"
        " call transferred from one room to another.",
    )
    metadata: Tags = Field(default_factory=dict, description="Tags of the room's recording (now or next).")


class LiveParticipant(_Body):
    id: str
    display_name: str | None = None
    paused: bool
    tracks: list[str]


class RoomOut(_Body):
    room_id: str
    recording: bool = Field(description="Whether the room is recorded under the policy.")
    policy: RoomPolicy
    recording_id: str | None = Field(default=None, description="Its recording in progress, if any.")
    paused: bool = False
    participants: list[LiveParticipant] = Field(default_factory=list)
    recorder: str | None = Field(
        default=None,
        description="A fleet's API node: the recorder (node name, GET /v1/recorders) whose SFU has the room,"
        " as that recorder reported it; a room id on two SFUs is listed once per recorder.",
    )
    recorder_state: NodeState | None = Field(
        default=None,
        description="That recorder's state: a recorder not alive has nothing in progress (no recording_id,"
        " participants or pause shown for it).",
    )


class RoomList(_Body):
    rooms: list[RoomOut]


# -- keys and audit --------------------------------------------------------------------------------------


class KeyRequest(_Body):
    name: Annotated[str, StringConstraints(pattern=KEY_NAME_PATTERN)]
    role: Role


class KeyList(_Body):
    keys: list[ApiKeyOut]


class ApiKeyOut(_Body):
    key_id: str
    name: str
    role: Role
    created_at: Timestamp
    created_by: str
    revoked_at: Timestamp | None = None


class AuditQuery(_Body):
    after: int = Field(default=0, ge=0, le=2**53, description="Entries after this seq.")
    limit: int = Field(default=100, ge=1, le=1000)
    action: Annotated[str, StringConstraints(max_length=64)] | None = None
    actor: Annotated[str, StringConstraints(max_length=64)] | None = None
    target: Annotated[str, StringConstraints(max_length=256)] | None = None


class TrailQuery(_Body):
    """GET /v1/recordings/{id}/audit: a page of the entries about one recording."""

    after: int = Field(default=0, ge=0, le=2**53, description="Entries after this seq.")
    limit: int = Field(default=100, ge=1, le=1000)


class AuditChainResult(_Body):
    ok: bool
    entries: int
    problems: list[str]


KeyList.model_rebuild()


class AuditPage(_Body):
    entries: list[AuditEntry]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next page.")
