"""Settings of the records lifecycle (`lifecycle` section): retention defaults and rules, the deletion
scheduler's pace, and export jobs (workers, where downloadable bundles are kept, the customers' buckets)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from recorder.lifecycle.rules import KeepPeriods, RetentionPolicy, RetentionRule
from recorder.names import SAFE_ID_PATTERN
from recorder.storage.settings import S3Settings

DestinationName = Annotated[str, StringConstraints(pattern=f"^{SAFE_ID_PATTERN}$")]


class LifecycleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Run the deletion scheduler, the legal hold reconciliation and export jobs in"
        " `callvault serve` (needs the control API's catalog).",
    )
    run_on: Literal["api", "workers"] = Field(
        default="api",
        description="On a fleet (PostgreSQL catalog, job queue): which nodes run the periodic passes (holds"
        " to the store, deletions, export schedules), one at a time across the fleet. `api`: the nodes with"
        " the api role; `workers`: the nodes with the worker role and not the api role (they need the"
        " archive's store settings), API-only nodes then run none. Without a fleet the one node runs them.",
    )
    defaults: KeepPeriods = Field(
        default_factory=KeepPeriods,
        description="Days each kind of object (originals, composite, transcript, forensic) is kept after the"
        " recording finished when no rule decides; unset: kept forever.",
    )
    rules: list[RetentionRule] = Field(
        default_factory=list,
        description="Retention rules, first match wins per kind; rules set through the API come after these.",
    )
    interval_seconds: float = Field(
        default=60.0, gt=0, le=86400, description="Seconds between two passes of the deletion scheduler."
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Recordings one pass of the scheduler looks at, at most."
    )
    retry_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=30 * 86400,
        description="When a due deletion is blocked (legal hold, store unavailable), seconds before it is"
        " tried again (object lock: when the lock ends).",
    )
    export_workers: int = Field(default=2, ge=1, le=32, description="Export jobs run at once.")
    export_dir: Path = Field(
        default=Path("exports"),
        description="Where export jobs write their bundles (downloadable ones stay there); relative to"
        " data_dir.",
    )
    export_keep_days: float = Field(
        default=7.0, gt=0, le=3650, description="Days a downloadable export's bundles are kept, then removed."
    )
    export_max_recordings: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most recordings one export job may hold."
    )
    export_destinations: dict[DestinationName, S3Settings] = Field(
        default_factory=dict,
        description="Customers' S3 buckets exports may be sent to, by name (the API names one; it never"
        " gives an endpoint or credentials).",
    )

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[RetentionRule]) -> list[RetentionRule]:
        ids = [r.rule_id for r in rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule_id values must be unique")
        return rules

    def policy(self, api_rules: list[RetentionRule]) -> RetentionPolicy:
        return RetentionPolicy(defaults=self.defaults, rules=[*self.rules, *api_rules])

    def resolved_export_dir(self, data_dir: Path) -> Path:
        return self.export_dir if self.export_dir.is_absolute() else data_dir / self.export_dir
