"""Evaluation jobs: ``POST /v1/jobs/{id}/evaluations`` (a tuned model) and
``POST /v1/evaluations`` (a base model alone). Both queue an ``evaluate`` job: it is then
an ordinary job (``GET /v1/jobs/{id}``, events, cancel, retry, report, artifacts)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Response

from app.api.deps import QueueDep, SessionDep, SettingsDep, TenantDep
from app.api.job_schemas import JobOut
from app.api.jobs import IdempotencyKey, answer_new_job
from app.jobs.evaluations import (
    BaseEvaluationCreate,
    EvaluationCreate,
    resolve_base_evaluation,
    resolve_tuned_evaluation,
)
from app.jobs.service import add_job, succeeded_tune_job

router = APIRouter(tags=["evaluations"])


@router.post("/v1/jobs/{job_id}/evaluations", status_code=201, response_model=JobOut)
def evaluate_tuned(
    job_id: str,
    body: EvaluationCreate,
    queue: QueueDep,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue an evaluation of tune job ``job_id``'s tuned model and its base model on new
    eval datasets of the job's task. 404 for no such job (or another tenant's), 409 unless
    it is a succeeded tune job, 422 naming a bad field, 429 when the tenant has too many
    jobs queued or running; ``Idempotency-Key`` as for ``POST /v1/jobs``."""
    source = succeeded_tune_job(session, tenant.id, job_id)
    job, created = add_job(
        session,
        tenant.id,
        kind="evaluate",
        digest=body.request_sha256(source.id),
        resolve=lambda: resolve_tuned_evaluation(session, source, body, settings),
        settings=settings,
        idempotency_key=idempotency_key,
        source_job=source,
    )
    return answer_new_job(job, created, queue, response, background)


@router.post("/v1/evaluations", status_code=201, response_model=JobOut)
def evaluate_base(
    body: BaseEvaluationCreate,
    queue: QueueDep,
    response: Response,
    background: BackgroundTasks,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Queue an evaluation of a served base model alone (basic and refuse prompts) with a
    knowledge probe of every eval set (correctness histogram in the report)."""
    job, created = add_job(
        session,
        tenant.id,
        kind="evaluate",
        digest=body.request_sha256(),
        resolve=lambda: resolve_base_evaluation(session, tenant.id, body, settings),
        settings=settings,
        idempotency_key=idempotency_key,
    )
    return answer_new_job(job, created, queue, response, background)
