"""The UI pages: ``/ui/jobs`` (list), ``/ui/jobs/{id}`` (one report), ``/ui/compare``.

Every query is scoped by the tenant of the cookie or bearer key; another tenant's job
answers 404. A job's folder is ``store.job_dir(job.id)``, built only from the id
stored in the database (the worker runs ``run_job`` with that folder as ``out_dir``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, StoreDep
from app.db.models import Job, Tenant
from app.jobs.public import public_message
from app.jobs.repository import JobRepository
from app.jobs.states import JobStatus
from app.storage import ArtifactStore
from app.ui.auth import UiSecretDep, ui_tenant
from app.ui.auth import router as login_router
from app.ui.html import note, page, section, table, text
from app.ui.views import config_table, differences_table, evaluation_sections, report_sections
from grait_engine.reporting.data import JobData, load_job, read_report, ths_by_test_set

router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(login_router)

LIST_LIMIT = 200
MAX_COMPARE = 8
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Images = Annotated[Literal["svg", "png"], Query()]


def job_dir(store: ArtifactStore, job: Job) -> Path | None:
    """The job's folder, from the stored id only (None if that id is not path-safe)."""
    if not SAFE_ID.fullmatch(job.id):
        return None
    return store.job_dir(job.id)


def job_data(store: ArtifactStore, job: Job, label: str) -> JobData | None:
    """The finished job folder loaded, or None while the job has no report."""
    folder = job_dir(store, job)
    if job.status != JobStatus.SUCCEEDED or folder is None:
        return None
    try:
        return load_job(folder, label=label)
    except FileNotFoundError:
        return None


def _tenant_jobs(session: Session, tenant: Tenant, ids: list[str]) -> list[Job]:
    """The tenant's jobs among ``ids``, in the order asked for."""
    return JobRepository(session, tenant.id).get_many(ids)


def headline(job: Job, store: ArtifactStore) -> dict[str, float | None]:
    """THS of the tuned model per test set: from ``job.result``, else from report.json."""
    result: dict[str, Any] = job.result or {}
    if isinstance(result.get("eval"), dict):
        return ths_by_test_set(result)
    if isinstance(result.get("ths"), dict):
        return {k: v if isinstance(v, int | float) else None for k, v in result["ths"].items()}
    folder = job_dir(store, job)
    report = (
        read_report(folder) if folder is not None and job.status == JobStatus.SUCCEEDED else None
    )
    return ths_by_test_set(report) if report else {}


def _ths_cell(values: dict[str, float | None]) -> str:
    if not values:
        return '<span class="note">n/a</span>'
    return ", ".join(
        f"{text(name)} {'n/a' if v is None else f'{v:.1f}'}" for name, v in values.items()
    )


@router.get("/jobs")
def jobs_page(
    request: Request, session: SessionDep, store: StoreDep, secret: UiSecretDep
) -> Response:
    """The tenant's newest jobs with status, method, model and headline THS; pick to compare."""
    tenant = ui_tenant(request, session, secret)
    if isinstance(tenant, Response):
        return tenant
    jobs = JobRepository(session, tenant.id).newest(LIST_LIMIT)
    if not jobs:
        return page("Jobs", note("no jobs yet"))
    rows = [
        [
            f'<input type="checkbox" name="ids" value="{text(job.id)}" aria-label="compare">',
            f'<a href="/ui/jobs/{text(job.id)}">{text(job.id)}</a>',
            f'<span class="status">{text(job.status)}</span>',
            text(_method_cell(job)),
            text(job.model),
            text(job.task),
            text(job.created_at.strftime("%Y-%m-%d %H:%M")),
            _ths_cell(headline(job, store)),
        ]
        for job in jobs
    ]
    headers = ["", "job", "status", "method", "model", "task", "created", "THS (tuned)"]
    body = (
        '<form method="get" action="/ui/compare">'
        + table(headers, rows)
        + '<button type="submit">Compare selected</button></form>'
    )
    return page("Jobs", body)


def _status_section(job: Job) -> str:
    """Status, stage and error of a job whose report is not there."""
    lines = [f'status: <span class="status">{text(job.status)}</span>']
    if job.stage:
        lines.append(f"stage: {text(job.stage)}")
    if job.error_code or job.error_message:
        # As the API shows it: an old row's SQL statement never reaches a page.
        lines.append(f"error: {text(job.error_code)} {text(public_message(job.error_message))}")
    body = "<p>" + "<br>".join(lines) + "</p>" + note("The report is not ready yet.")
    return section("status", "Status", body)


@router.get("/jobs/{job_id}")
def job_page(
    request: Request,
    job_id: str,
    session: SessionDep,
    store: StoreDep,
    secret: UiSecretDep,
    images: Images = "svg",
) -> Response:
    """One job's report: results table, the five figures, stage timings and its config."""
    tenant = ui_tenant(request, session, secret)
    if isinstance(tenant, Response):
        return tenant
    found = _tenant_jobs(session, tenant, [job_id])
    if not found:
        return page("Not found", note("no such job"), status_code=404)
    job = found[0]
    title = f"Job {job.id}: {job.method} on {job.model}"
    if job.kind != "tune":
        title = f"Job {job.id}: {job.kind} {job.method} on {job.model}"
    data = job_data(store, job, label=job.method)
    if data is None:
        body = _source_note(job) + _status_section(job)
        body += section("config", "Config", config_table(job.config))
        return page(title, body)
    summary = note(f"status {job.status}, task {job.task}, created {job.created_at:%Y-%m-%d %H:%M}")
    config = data.config or job.config
    if job.kind == "evaluate":
        sections = _source_note(job) + evaluation_sections(data, images)
    else:
        sections = report_sections([data], images)
    body = summary + sections + section("config", "Config", config_table(config))
    return page(title, body)


def _method_cell(job: Job) -> str:
    """The list's method column; other kinds than ``tune`` are named (``evaluate: grait``)."""
    return job.method if job.kind == "tune" else f"{job.kind}: {job.method}"


def _source_note(job: Job) -> str:
    """What a non-tune job works on: the tuned model of its source job, or a base model."""
    if job.kind == "tune":
        return ""
    if job.source_job_id is None:
        return f"<p>{text(job.kind)} job of the base model {text(job.model)}</p>"
    link = f'<a href="/ui/jobs/{text(job.source_job_id)}">{text(job.source_job_id)}</a>'
    return f"<p>{text(job.kind)} job of the tuned model of job {link}</p>"


def _compare_ids(raw: list[str]) -> list[str]:
    """``ids=a,b`` and ``ids=a&ids=b`` alike: unique ids in order."""
    ids: list[str] = []
    for value in raw:
        for part in value.split(","):
            if part.strip() and part.strip() not in ids:
                ids.append(part.strip())
    return ids


@router.get("/compare")
def compare_page(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    secret: UiSecretDep,
    ids: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies the default)
    images: Images = "svg",
) -> Response:
    """Two or more jobs side by side: results, overlaid figures and config differences."""
    tenant = ui_tenant(request, session, secret)
    if isinstance(tenant, Response):
        return tenant
    wanted = _compare_ids(ids)
    if not 2 <= len(wanted) <= MAX_COMPARE:
        return page("Compare", note(f"pick 2 to {MAX_COMPARE} jobs"), status_code=400)
    jobs = _tenant_jobs(session, tenant, wanted)
    if len(jobs) != len(wanted):
        return page("Not found", note("no such job"), status_code=404)
    labels = [f"#{i} {job.method}" for i, job in enumerate(jobs, start=1)]
    loaded = [job_data(store, job, label) for job, label in zip(jobs, labels, strict=True)]
    rows = [
        [
            text(label),
            f'<a href="/ui/jobs/{text(job.id)}">{text(job.id)}</a>',
            text(job.status),
            text(job.model),
            "ready" if data else "report not ready",
        ]
        for label, job, data in zip(labels, jobs, loaded, strict=True)
    ]
    body = section("jobs", "Jobs", table(["label", "job", "status", "model", "report"], rows))
    ready = [data for data in loaded if data is not None]
    body += report_sections(ready, images) if ready else note("no report is ready yet")
    configs = [
        (data.config if data else None) or job.config
        for job, data in zip(jobs, loaded, strict=True)
    ]
    body += section("differences", "Config differences", differences_table(labels, configs))
    return page("Compare jobs", body)
