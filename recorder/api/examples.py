"""Examples of every request and answer body of the control API, built as instances of the models the
API validates and answers with (so each is valid by construction; the tests check them against the
published schemas too). `Registry.openapi` puts them in the document."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from recorder.api.audit import AuditEntry
from recorder.api.auth import NewApiKey, Role
from recorder.api.models import (
    ApiKeyOut,
    AuditChainResult,
    AuditPage,
    DefaultPolicy,
    Deleted,
    FileLink,
    FileLinks,
    KeyList,
    KeyRequest,
    LegalHold,
    LiveParticipant,
    MetadataPatch,
    Output,
    ParticipantOut,
    ParticipantPatch,
    PauseOut,
    PauseRequest,
    PauseState,
    PolicyOut,
    RecordingDetail,
    RecordingOut,
    RecordingPage,
    RecordingStatus,
    RoomList,
    RoomOut,
    RoomPolicy,
    StartRequest,
    TrackOut,
    VerifyResult,
)
from recorder.api.problems import TITLES, TYPE_BASE, InvalidParam, Problem
from recorder.webhooks import examples as hooks

T0 = hooks.STARTED
RID = hooks.RECORDING_ID
ROOM = hooks.ROOM_ID
KEY_ID = "5e0c8a41b2d7"


def _participants() -> list[ParticipantOut]:
    return [
        ParticipantOut(
            id="1001",
            display_name="Agent Smith",
            metadata={"role": "agent"},
            joined_at=T0,
            left_at=hooks.FINISHED,
        ),
        ParticipantOut(
            id="1002",
            display_name="Customer",
            metadata={"role": "customer"},
            joined_at=T0 + timedelta(seconds=2.5),
            left_at=hooks.FINISHED,
        ),
    ]


def _recording() -> RecordingOut:
    return RecordingOut(
        recording_id=RID,
        room_id=ROOM,
        call_id=hooks.CALL_ID,
        status=RecordingStatus.FINISHED,
        started_at=T0,
        finished_at=hooks.FINISHED,
        duration=(hooks.FINISHED - T0).total_seconds(),
        tracks=2,
        bytes=1_715_230,
        metadata={"queue": "billing", "outputs": "tracks"},
        participants=_participants(),
        retention_until=hooks.FINISHED + timedelta(days=30),
    )


def _detail() -> RecordingDetail:
    pause = PauseOut(
        participant=None,
        start_time=T0 + timedelta(minutes=3),
        end_time=T0 + timedelta(minutes=4),
        by="operator-1",
        reason="card number",
    )
    tracks = [
        TrackOut(
            name=t.name,
            participant=t.participant_id,
            kind=t.kind.value,
            codec=t.codec.value,
            state=t.state,
            file=t.file,
            frames=t.frames,
            packets_lost=t.packets_lost,
            packets_paused=310 if t.kind.value == "video" else 3000,
            bytes=sum(s.size for s in t.segments),
        )
        for t in hooks.manifest().tracks
    ]
    return RecordingDetail(
        **_recording().model_dump(), pauses=[pause], track_list=tracks, manifest=hooks.manifest()
    )


def _room() -> RoomOut:
    return RoomOut(
        room_id=ROOM,
        recording=True,
        policy=RoomPolicy(record=True, outputs=[Output.TRACKS], metadata={"queue": "billing"}),
        recording_id=RID,
        paused=False,
        participants=[
            LiveParticipant(id="1001", display_name="Agent Smith", paused=False, tracks=["1001-video-0"]),
            LiveParticipant(id="1002", display_name="Customer", paused=True, tracks=["1002-audio-1"]),
        ],
    )


def _key() -> ApiKeyOut:
    return ApiKeyOut(
        key_id=KEY_ID, name="crm-integration", role=Role.SUPERVISOR, created_at=T0, created_by="admin-1"
    )


def _audit_entry() -> AuditEntry:
    fields: dict[str, Any] = {
        "seq": 42,
        "at": "2026-05-04T09:45:12.123456Z",
        "actor": "supervisor-1",
        "role": "supervisor",
        "action": "recording.view",
        "target": RID,
        "outcome": "ok",
        "remote": "10.0.3.17",
        "detail": {},
        "prev_hash": "0" * 64,
        "hash": "",
    }
    entry = AuditEntry.model_validate(fields)
    return entry.model_copy(update={"hash": entry.computed_hash()})


def _link(name: str, size: int) -> FileLink:
    return FileLink(
        name=name,
        size=size,
        url=hooks.link(name).url,
        presigned=True,
        expires_at=T0 + timedelta(minutes=15),
    )


BODIES: dict[type[BaseModel], BaseModel] = {
    # requests
    MetadataPatch: MetadataPatch(call_id=hooks.CALL_ID, metadata={"ticket": "T-1234", "queue": None}),
    ParticipantPatch: ParticipantPatch(metadata={"customer_id": "C-998"}),
    PauseRequest: PauseRequest(reason="card number"),
    LegalHold: LegalHold(hold=True, reason="case 2026-17"),
    DefaultPolicy: DefaultPolicy(default="enabled"),
    RoomPolicy: RoomPolicy(
        record=True, outputs=[Output.TRACKS, Output.COMPOSITE], metadata={"queue": "billing"}
    ),
    StartRequest: StartRequest(call_id=hooks.CALL_ID, metadata={"queue": "billing"}),
    KeyRequest: KeyRequest(name="crm-integration", role=Role.SUPERVISOR),
    # answers
    RecordingPage: RecordingPage(items=[_recording()], total=31, limit=1, offset=0, next_offset=1),
    RecordingDetail: _detail(),
    PauseState: PauseState(recording_id=RID, participant="1002", paused=True),
    FileLinks: FileLinks(
        recording_id=RID,
        files=[_link("1001-video-0.webm", 823_500), _link("manifest.json", 6_120)],
    ),
    VerifyResult: VerifyResult(
        recording_id=RID,
        target=f"s3://recordings/{hooks.PREFIX}",
        ok=True,
        objects_checked=12,
        key_id=hooks.signer().key_id,
        problems=[],
    ),
    Deleted: Deleted(recording_id=RID, deleted_at=hooks.FINISHED + timedelta(days=31), objects_deleted=12),
    PolicyOut: PolicyOut(
        default="enabled", rooms={ROOM: RoomPolicy(record=True, metadata={"queue": "billing"})}
    ),
    RoomList: RoomList(rooms=[_room()]),
    RoomOut: _room(),
    KeyList: KeyList(keys=[_key()]),
    NewApiKey: NewApiKey(
        **_key().model_dump(), key=f"cv_{KEY_ID}_8mQ2yH0kZpW4rT6vX1bN3cF5gJ7lL9sD2aE4uI6oP8q"
    ),
    ApiKeyOut: _key().model_copy(update={"revoked_at": T0 + timedelta(days=90)}),
    AuditPage: AuditPage(entries=[_audit_entry()], next_after=None),
    AuditChainResult: AuditChainResult(ok=True, entries=1250, problems=[]),
}
"""An example of each body, by model."""

PROBLEM_DETAILS = {
    400: ("missing-body", "body: required, a JSON object ({} when no field is set)"),
    401: ("unauthorized", "an API key is required (Authorization: Bearer <key>)"),
    403: ("forbidden", "role supervisor may not do this (allowed: admin, operator)"),
    404: ("not-found", f"no recording {RID}"),
    408: ("body-timeout", "body: not received within 10 s (api.body_timeout)"),
    409: ("legal-hold", f"recording {RID} is under legal hold"),
    422: ("invalid-request", "query.limit: Input should be less than or equal to 200"),
    502: ("sfu-error", "policy saved, but the SFU refused or is unreachable: Janus is not connected"),
    503: ("storage-unavailable", "the store cannot presign links now: connection refused"),
    504: (
        "recorder-timeout",
        "recorder rec-b did not take the command for room 1234 within 10 s: not executed",
    ),
}


PATH_VALUES = {"recording_id": RID, "participant_id": "1002", "room_id": ROOM, "key_id": KEY_ID}


def problem(status: int, path: str = "/v1/recordings") -> dict[str, Any]:
    """An example problem with this status, as the API writes it for a request to `path` (a route's
    path: its parameters get example values)."""
    instance = re.sub(r"\{([a-z_]+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)
    kind, detail = PROBLEM_DETAILS.get(status, ("error", TITLES.get(status, "error")))
    invalid = [InvalidParam(name="query.limit", reason="Input should be less than or equal to 200")]
    found = Problem(
        type=TYPE_BASE + kind,
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=instance,
        **{"invalid-params": invalid if status == 422 else None},
    )
    return found.model_dump(mode="json", by_alias=True, exclude_none=True)


def body(model: type[BaseModel]) -> Any:
    """The example of `model` as JSON (KeyError: a body without an example)."""
    return BODIES[model].model_dump(mode="json", by_alias=True)


TEXT = {
    "text/plain; version=0.0.4; charset=utf-8": (
        "# HELP callvault_active_recordings recordings in progress\n"
        "# TYPE callvault_active_recordings gauge\n"
        "callvault_active_recordings 3.0\n"
    ),
    "application/x-ndjson": _audit_entry().model_dump_json() + "\n",
}
"""Examples of the text answers, by media type."""
