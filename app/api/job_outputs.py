"""``/v1/jobs/{id}/...``: metrics, checkpoints, artifacts (list, download) and report."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from app.api.deps import SessionDep, StoreDep, TenantDep
from app.api.job_schemas import (
    ArtifactList,
    ArtifactOut,
    CheckpointList,
    CheckpointOut,
    MetricList,
    MetricPoint,
    MetricSeries,
)
from app.api.jobs import get_job_or_404
from app.errors import Conflict, NotFound
from app.jobs.outputs import artifact_path, list_artifacts, list_checkpoints, read_report
from app.jobs.repository import metric_series
from app.jobs.states import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
MetricName = Annotated[str | None, Query(max_length=100, description="e.g. train/loss")]


@router.get("/{job_id}/metrics", response_model=MetricList)
def metrics(
    job_id: str, session: SessionDep, tenant: TenantDep, name: MetricName = None
) -> MetricList:
    """Metric series (``train/loss``, ``train/lr``), each ``[{step, value}]`` by step."""
    job = get_job_or_404(session, tenant.id, job_id)
    series = metric_series(session, job.id, name)
    return MetricList(
        data=[
            MetricSeries(name=key, points=[MetricPoint(step=s, value=v) for s, v in points])
            for key, points in series.items()
        ]
    )


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def checkpoints(
    job_id: str, session: SessionDep, tenant: TenantDep, store: StoreDep
) -> CheckpointList:
    """Training checkpoints kept so far (a resumed run restarts from the newest)."""
    job = get_job_or_404(session, tenant.id, job_id)
    return CheckpointList(data=[CheckpointOut(**row) for row in list_checkpoints(store, job.id)])


@router.get("/{job_id}/artifacts", response_model=ArtifactList)
def artifacts(job_id: str, session: SessionDep, tenant: TenantDep, store: StoreDep) -> ArtifactList:
    """The job's files: report, predictions per test set, training curves, adapter..."""
    job = get_job_or_404(session, tenant.id, job_id)
    files = list_artifacts(store, job.id)
    return ArtifactList(
        data=[
            ArtifactOut(name=name, size_bytes=path.stat().st_size) for name, path in files.items()
        ]
    )


@router.get("/{job_id}/artifacts/{name:path}", response_class=FileResponse)
def download(
    job_id: str, name: str, session: SessionDep, tenant: TenantDep, store: StoreDep
) -> FileResponse:
    """One listed artifact; any other name (``../x`` included) is a 404 problem."""
    job = get_job_or_404(session, tenant.id, job_id)
    path = artifact_path(store, job.id, name)
    if path is None:
        raise NotFound(f"job {job.id} has no artifact {name[:100]!r}")
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix == ".jsonl":
        media_type = "application/x-ndjson"
    return FileResponse(path, media_type=media_type, filename=path.name)


@router.get("/{job_id}/report")
def report(job_id: str, session: SessionDep, tenant: TenantDep, store: StoreDep) -> Any:
    """``report.json`` (API.md); 409 while the job has not succeeded."""
    job = get_job_or_404(session, tenant.id, job_id)
    document = read_report(store, job.id) if job.status == JobStatus.SUCCEEDED else None
    if document is None:
        raise Conflict(f"job {job.id} is {job.status}: the report is written when it succeeds")
    return document
