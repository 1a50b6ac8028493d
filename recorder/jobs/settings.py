"""`jobs.*`: the distributed job queue's settings (used only when the catalog is PostgreSQL)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class JobSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    concurrency: int = Field(
        default=1, ge=1, le=64, description="Jobs one worker node runs at once (a composite uses a CPU core)."
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker tells the queue it is alive."
    )
    stalled_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job whose worker sent no heartbeat for this long is given to another worker"
        " (a worker killed mid-job); at least a few heartbeats.",
    )
    report_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="How long GET /v1/recordings/{id}/report on an API node without the worker role waits"
        " for the worker building the report before answering 503 report-pending (with Retry-After).",
    )


class Role(StrEnum):
    """What a `callvault serve` node does (service.roles)."""

    RECORDER = "recorder"  # follows its SFU, records, uploads
    API = "api"  # REST API, console, metrics (stateless: any number)
    WORKER = "worker"  # post-call work: composites (the job queue on PostgreSQL, else in-process)


ALL_ROLES = [Role.RECORDER, Role.API, Role.WORKER]
