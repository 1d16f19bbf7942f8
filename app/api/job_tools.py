"""``/v1/jobs/{id}/generations`` and ``/v1/jobs/{id}/exports``: ask a succeeded tune job's
model a few questions, or export it merged (both queue a job of their own)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import BaseModel

from app.api.deps import QueueDep, SessionDep, SettingsDep, TenantDep
from app.api.job_schemas import JobOut
from app.api.jobs import IdempotencyKey, answer_new_job
from app.execution.queue import JobQueue
from app.jobs.service import add_job, succeeded_tune_job
from app.jobs.tools import (
    ExportCreate,
    GenerationCreate,
    export_config,
    generation_config,
    request_sha256,
)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.post("/{job_id}/generations", status_code=201, response_model=JobOut)
def generate(
    job_id: str,
    body: GenerationCreate,
    queue: QueueDep,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue a ``generate`` job: the tuned model (refuse prompt) and the base model (basic
    and refuse prompts) answer ``questions``; the answers are the job's ``result`` and its
    ``answers.json``. 404 for another tenant's job, 409 unless a succeeded tune job, 422
    naming a bad question (``questions.0.choices``), 429 at the active-job limit."""
    return _queue(
        "generate",
        job_id,
        body,
        generation_config,
        queue,
        response,
        background,
        session,
        tenant.id,
        settings,
        idempotency_key,
    )


@router.post("/{job_id}/exports", status_code=201, response_model=JobOut)
def export(
    job_id: str,
    queue: QueueDep,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    body: ExportCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue an ``export`` job: the adapter merged into the base model, saved in the new
    job's artifacts as ``merged/`` (config, ``model*.safetensors``, tokenizer files). The
    body ``{"merge": true}`` may be left out. 404/409/429 as for generations."""
    return _queue(
        "export",
        job_id,
        body or ExportCreate(),
        export_config,
        queue,
        response,
        background,
        session,
        tenant.id,
        settings,
        idempotency_key,
    )


def _queue(
    kind: str,
    job_id: str,
    body: BaseModel,
    configure: Callable[[Any, Any], dict[str, Any]],
    queue: JobQueue,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant_id: str,
    settings: SettingsDep,
    idempotency_key: str | None,
) -> JobOut:
    """Check the source job, queue the new job (``add_job``) and enqueue it after the
    commit; an idempotent replay answers 200 with the earlier job."""
    source = succeeded_tune_job(session, tenant_id, job_id)
    job, created = add_job(
        session,
        tenant_id,
        kind=kind,
        digest=request_sha256(kind, source, body),
        resolve=lambda: configure(source, body),
        settings=settings,
        idempotency_key=idempotency_key,
        source_job=source,
    )
    return answer_new_job(job, created, queue, response, background)
