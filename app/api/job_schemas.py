"""Response bodies of the job resources (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from app.api.pagination import ListOf, Page
from app.db.models import Job, JobEvent
from app.jobs.public import public_message
from app.jobs.vocabulary import public_config


class Progress(BaseModel):
    stage: str | None
    done: int
    total: int | None
    fraction: float | None
    eta_seconds: float | None


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: str
    kind: str
    model: str
    method: str
    task: str
    stage: str | None
    progress: Progress
    attempt: int
    max_attempts: int
    error: JobError | None
    parent_job_id: str | None
    source_job_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any]
    result: dict[str, Any] | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        total = job.progress_total
        fraction = round(job.progress_done / total, 4) if total else None
        error = None
        if job.error_code is not None:
            error = JobError(code=job.error_code, message=public_message(job.error_message))
        return cls(
            id=job.id,
            status=job.status,
            kind=job.kind,
            model=job.model,
            method=job.method,
            task=job.task,
            stage=job.stage,
            progress=Progress(
                stage=job.stage,
                done=job.progress_done,
                total=total,
                fraction=fraction,
                eta_seconds=job.eta_seconds,
            ),
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            error=error,
            parent_job_id=job.parent_job_id,
            source_job_id=job.source_job_id,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            config=public_config(job.config),
            result=job.result,
        )


class JobList(Page[JobOut]):
    """A page of the tenant's jobs, newest first."""


class EventOut(BaseModel):
    id: int
    object: Literal["event"] = "event"
    created_at: datetime
    type: str
    stage: str | None
    message: str | None
    data: dict[str, Any] | None

    @classmethod
    def of(cls, event: JobEvent) -> EventOut:
        return cls(
            id=event.id,
            created_at=event.created_at,
            type=event.type,
            stage=event.stage,
            message=event.message,
            data=event.data,
        )


class EventList(Page[EventOut]):
    """A page of a job's events, oldest first."""


class MetricPoint(BaseModel):
    step: int
    value: float


class MetricSeries(BaseModel):
    name: str
    points: list[MetricPoint]


class MetricList(ListOf[MetricSeries]):
    """A job's metric series."""


class ArtifactOut(BaseModel):
    name: str
    object: Literal["artifact"] = "artifact"
    size_bytes: int


class ArtifactList(ListOf[ArtifactOut]):
    """A job's artifact files."""


class CheckpointOut(BaseModel):
    name: str
    object: Literal["checkpoint"] = "checkpoint"
    step: int
    created_at: datetime


class CheckpointList(ListOf[CheckpointOut]):
    """A job's training checkpoints."""
