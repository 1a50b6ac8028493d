"""Examples of the lifecycle's API bodies and webhooks (the OpenAPI document shows them; the tests check
them against the published schemas)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from recorder.lifecycle.models import (
    BundleOut,
    Destination,
    DryRunPage,
    DueOut,
    ExportFilter,
    ExportJobOut,
    ExportJobPage,
    ExportRequest,
    Include,
    JobState,
    KindOut,
    LifecycleOut,
    ObjectOut,
    PassOut,
    RuleList,
    ScheduleList,
    ScheduleOut,
    ScheduleRequest,
)
from recorder.lifecycle.rules import KeepPeriods, RetentionRule, RuleSpec
from recorder.webhooks import examples as hooks
from recorder.webhooks.events import EventType, ExportFailed, ExportFinished, RecordingDeleted, WebhookEvent

RID = hooks.RECORDING_ID
ROOM = hooks.ROOM_ID
DONE = hooks.FINISHED
JOB = "exp-3f9a1c0b7e21"
SCHEDULE = "sch-8b1d4e6f0a93"
SHA = "9f2c3ad41e0b7c55d8a6f1e2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6"

RULE = RetentionRule(rule_id="billing-originals", rooms=[ROOM], keep_days=KeepPeriods(originals=90))
KINDS = [
    KindOut(kind="originals", delete_after=DONE + timedelta(days=90), rule="billing-originals"),
    KindOut(kind="composite", delete_after=DONE + timedelta(days=2555), rule="default"),
    KindOut(kind="transcript", delete_after=DONE + timedelta(days=2555), rule="default"),
    KindOut(kind="forensic", delete_after=DONE + timedelta(days=30), rule="default"),
]
REQUEST = ExportRequest(
    filter=ExportFilter(room=ROOM, tag=["queue:billing"], previous_days=1),
    include=[Include.ORIGINALS, Include.COMPOSITE, Include.MANIFESTS, Include.AUDIT],
    destination=Destination(type="s3", name="quality-team", prefix="callvault/nightly"),
)
ONCE = ExportRequest(
    filter=ExportFilter(call_id=hooks.CALL_ID), include=[Include.ORIGINALS, Include.MANIFESTS, Include.AUDIT]
)


def _job() -> ExportJobOut:
    return ExportJobOut(
        job_id=JOB,
        state=JobState.FINISHED,
        request=ONCE,
        created_at=DONE + timedelta(days=3),
        created_by="auditor-1",
        total=1,
        done=1,
        bundles=[
            BundleOut(
                recording_id=RID,
                name=f"{RID}.zip",
                size=2_416_337,
                sha256=SHA,
                location=f"/v1/exports/{JOB}/bundles/{RID}",
            )
        ],
        index_sha256=SHA,
    )


def _schedule() -> ScheduleOut:
    return ScheduleOut(
        schedule_id=SCHEDULE,
        cron="0 2 * * *",
        request=REQUEST,
        next_run=DONE + timedelta(days=1),
        last_run=DONE,
        created_by="bootstrap-admin",
    )


BODIES: dict[type[BaseModel], BaseModel] = {
    RuleSpec: RuleSpec(
        rooms=[ROOM], tags=["queue:billing"], keep_days=KeepPeriods(originals=90, composite=2555)
    ),
    RuleList: RuleList(defaults=KeepPeriods(composite=2555, forensic=30), settings_rules=[], rules=[RULE]),
    LifecycleOut: LifecycleOut(
        recording_id=RID,
        status="finished",
        legal_hold=False,
        legal_hold_in_store=False,
        delete_after=DONE + timedelta(days=2555),
        next_deletion=DONE + timedelta(days=90),
        kinds=KINDS,
        objects=[
            ObjectOut(name="1001-video-0.webm", kind="originals", delete_after=DONE + timedelta(days=90)),
            ObjectOut(name="composite-grid.mp4", kind="composite", delete_after=DONE + timedelta(days=2555)),
            ObjectOut(name="manifest.json", kind="record", delete_after=DONE + timedelta(days=2555)),
        ],
    ),
    DryRunPage: DryRunPage(
        until=DONE + timedelta(days=91),
        items=[
            DueOut(
                recording_id=RID,
                room_id=ROOM,
                next_deletion=DONE + timedelta(days=90),
                kinds=KINDS[:1],
                legal_hold=False,
            )
        ],
    ),
    PassOut: PassOut(
        evaluated=3, deleted=[RID], deleted_partly=[], objects_deleted=7, blocked={}, holds_applied=0
    ),
    ExportRequest: ONCE,
    ScheduleRequest: ScheduleRequest(**REQUEST.model_dump(), cron="0 2 * * *"),
    ExportJobOut: _job(),
    ExportJobPage: ExportJobPage(jobs=[_job()]),
    ScheduleOut: _schedule(),
    ScheduleList: ScheduleList(schedules=[_schedule()]),
}


def payloads() -> dict[EventType, WebhookEvent]:
    deleted = RecordingDeleted(
        recording_id=RID,
        room_id=ROOM,
        call_id=hooks.CALL_ID,
        deleted_at=DONE + timedelta(days=90, minutes=1),
        whole=False,
        rules=["billing-originals"],
        objects=["1001-video-0.webm", "1002-audio-1.webm"],
    )
    finished = ExportFinished(
        job_id=JOB,
        schedule_id=SCHEDULE,
        finished_at=DONE + timedelta(days=1, hours=2, minutes=3),
        recordings=14,
        destination="s3:quality-team/callvault/nightly",
        index_sha256=SHA,
    )
    failed = ExportFailed(
        job_id=JOB,
        schedule_id=SCHEDULE,
        failed_at=DONE + timedelta(days=1, hours=2, minutes=1),
        error="StorageRefusedError: put callvault/nightly/...: AccessDenied: Access Denied",
    )
    return {
        EventType.RECORDING_DELETED: WebhookEvent.of(deleted, DONE + timedelta(days=90, minutes=1)),
        EventType.EXPORT_FINISHED: WebhookEvent.of(finished, finished.finished_at),
        EventType.EXPORT_FAILED: WebhookEvent.of(failed, failed.failed_at),
    }
