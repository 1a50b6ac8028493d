"""The lifecycle's API bodies: retention rules and plans, the dry run, export requests, jobs and
schedules."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from recorder.api.models import DateTime, SearchQuery
from recorder.api.times import Timestamp
from recorder.lifecycle.rules import KeepPeriods, RetentionRule
from recorder.names import SAFE_ID_PATTERN

Id = Annotated[str, StringConstraints(pattern=f"^{SAFE_ID_PATTERN}$")]
Prefix = Annotated[
    str,
    StringConstraints(
        max_length=200,
        pattern=r"^([A-Za-z0-9_][A-Za-z0-9._-]{0,63}/){0,5}([A-Za-z0-9_][A-Za-z0-9._-]{0,63})?$",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- retention -----------------------------------------------------------------------------------------


class RuleList(_Body):
    defaults: KeepPeriods = Field(description="From the settings (lifecycle.defaults).")
    settings_rules: list[RetentionRule] = Field(description="From the settings (lifecycle.rules), first.")
    rules: list[RetentionRule] = Field(description="Set through the API, after the settings' rules.")


class KindOut(_Body):
    kind: str
    delete_after: Timestamp | None = Field(description="When its objects are deleted; null: kept forever.")
    rule: str


class ObjectOut(_Body):
    name: str
    kind: str
    delete_after: Timestamp | None = None
    deleted_at: Timestamp | None = None


class LifecycleOut(_Body):
    """A recording's retention: when each kind of its objects is deleted, by which rule; what was
    deleted already; why a due deletion waits."""

    recording_id: str
    status: str
    legal_hold: bool
    legal_hold_in_store: bool = Field(description="Whether the hold was applied to the stored objects.")
    delete_after: Timestamp | None = Field(
        description="When the last object goes (null: never, or not planned)."
    )
    next_deletion: Timestamp | None = None
    blocked: str | None = Field(default=None, description="Why the last due deletion deleted nothing.")
    kinds: list[KindOut] = Field(default_factory=list)
    objects: list[ObjectOut] = Field(default_factory=list)
    deleted_by: str | None = None


class DryRunQuery(_Body):
    until: DateTime | None = Field(default=None, description="Due by then (default: now).")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class DueOut(_Body):
    recording_id: str
    room_id: str | None = None
    next_deletion: Timestamp
    kinds: list[KindOut]
    legal_hold: bool
    blocked: str | None = None


class DryRunPage(_Body):
    until: Timestamp
    items: list[DueOut]
    next_offset: int | None = None


class PassOut(_Body):
    """What one pass of the scheduler did (POST /v1/lifecycle/run)."""

    evaluated: int
    deleted: list[str] = Field(description="Recordings deleted entirely (tombstones now).")
    deleted_partly: list[str]
    objects_deleted: int
    blocked: dict[str, str]
    holds_applied: int


# -- exports -------------------------------------------------------------------------------------------


class Include(StrEnum):
    ORIGINALS = "originals"
    COMPOSITE = "composite"
    TRANSCRIPTS = "transcripts"
    FORENSIC = "forensic"
    MANIFESTS = "manifests"
    AUDIT = "audit"


class ExportFilter(_Body):
    """The search filters (GET /v1/recordings), and for schedules a window relative to each run."""

    room: Id | None = None
    participant: Annotated[str, StringConstraints(max_length=256)] | None = None
    call_id: Id | None = None
    tag: list[Annotated[str, StringConstraints(min_length=1, max_length=600)]] = Field(
        default_factory=list, max_length=16
    )
    status: Literal["finished", "failed"] | None = None
    started_after: DateTime | None = None
    started_before: DateTime | None = None
    previous_days: int | None = Field(
        default=None,
        ge=1,
        le=366,
        description="Recordings started in the N whole UTC days before the day the job runs (1:"
        " yesterday's); replaces started_after/started_before.",
    )

    def query(self, limit: int, offset: int) -> SearchQuery:
        """The search query of this filter (the search API's own validation: times as RFC 3339 text)."""
        fields = self.model_dump(mode="json", exclude={"previous_days"}, exclude_none=True)
        return SearchQuery.model_validate({**fields, "limit": limit, "offset": offset})


class Destination(_Body):
    type: Literal["download", "s3"] = Field(
        default="download",
        description="'download': bundles kept for GET /v1/exports/{job_id}/bundles/{recording_id};"
        " 's3': uploaded to a configured customer bucket (lifecycle.export_destinations).",
    )
    name: Id | None = Field(default=None, description="The configured destination (type s3).")
    prefix: Prefix = Field(default="", description="Key prefix in the destination bucket.")

    @model_validator(mode="after")
    def _named(self) -> Destination:
        if self.type == "s3" and self.name is None:
            raise ValueError("name: required for an s3 destination")
        return self

    def label(self) -> str:
        return "download" if self.type == "download" else f"s3:{self.name}/{self.prefix}"


class ExportRequest(_Body):
    filter: ExportFilter = Field(default_factory=ExportFilter)
    include: list[Include] = Field(
        default_factory=lambda: [Include.ORIGINALS, Include.COMPOSITE, Include.MANIFESTS, Include.AUDIT],
        min_length=1,
        max_length=6,
    )
    destination: Destination = Field(default_factory=Destination)
    decrypt: bool = Field(
        default=False,
        description="Hand over encrypted objects decrypted (their plaintext, named without '.age'), with"
        " the service's playback identity; admin and auditor only, audited per recording. Each bundle's"
        " index says so and lists the ciphertext's and the plaintext's SHA-256, so it still verifies.",
    )

    @field_validator("include")
    @classmethod
    def _unique(cls, include: list[Include]) -> list[Include]:
        return sorted(set(include), key=list(Include).index)


class ScheduleRequest(ExportRequest):
    cron: Annotated[str, StringConstraints(min_length=9, max_length=100)] = Field(
        description="When to run, a 5-field cron expression in UTC ('0 2 * * *': every night at 02:00)."
    )


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class BundleOut(_Body):
    recording_id: str
    name: str
    size: int
    sha256: str
    location: str = Field(description="Download path (type download) or the object key (type s3).")


class ExportJobOut(_Body):
    job_id: str
    state: JobState
    request: ExportRequest
    created_at: Timestamp
    created_by: str
    schedule_id: str | None = None
    total: int | None = Field(default=None, description="Recordings to export (known once it started).")
    done: int = 0
    bundles: list[BundleOut] = Field(default_factory=list)
    skipped: list[str] = Field(
        default_factory=list, description="Recordings deleted (retention) after the job listed them."
    )
    index_sha256: str | None = Field(default=None, description="SHA-256 of the signed index export.json.")
    error: str | None = None


class ExportJobPage(_Body):
    jobs: list[ExportJobOut]


class ScheduleOut(_Body):
    schedule_id: str
    cron: str
    request: ExportRequest
    next_run: Timestamp
    last_run: Timestamp | None = None
    created_by: str


class ScheduleList(_Body):
    schedules: list[ScheduleOut]
