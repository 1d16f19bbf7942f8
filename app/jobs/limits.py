"""Operator limits on jobs: caps on count-like settings, finite numbers, active jobs per
tenant.

- ``check_finite(request)``: any NaN or Infinity anywhere in a job request (Python's JSON
  parser accepts the ``NaN`` / ``Infinity`` literals) is a 422 naming the field.
- ``check_caps(config, settings)``: every count-like knob of a resolved job config is at
  most its cap (``CAPS``: knob in the API's names -> setting name, ``GRAIT_MAX_*``); past
  it, 422 naming the field as the request names it and the setting.
- ``check_active_jobs(session, tenant_id, settings)``: a tenant's queued plus running jobs
  stay under ``max_active_jobs_per_tenant``; past it, 429.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Tenant
from app.errors import ProblemError, UnprocessableRequest
from app.jobs.repository import JobRepository
from app.jobs.vocabulary import public_config
from app.settings import Settings

# A resolved job config's knob (the API's names, as 422s name it) -> the setting that caps it.
CAPS: dict[str, str] = {
    "method.n_ik": "max_items",
    "method.n_idk": "max_items",
    "method.reweight_every": "max_steps",
    "hyperparameters.epochs": "max_epochs",
    "hyperparameters.max_steps": "max_steps",
    "hyperparameters.checkpoint_every": "max_steps",
    "hyperparameters.lora_r": "max_lora_r",
    "hyperparameters.batch_size": "max_batch_size",
    "hyperparameters.grad_accum": "max_grad_accum",
    "hyperparameters.keep_checkpoints": "max_keep_checkpoints",
    "probe.n_samples": "max_probe_samples",
    "probe.max_new_tokens": "max_new_tokens",
    "probe.choice_shots": "max_shots",
    "probe.open_shots": "max_shots",
    "features.dim": "max_features_dim",
    "features.lora_r": "max_lora_r",
    "features.warmup_epochs": "max_epochs",
    "features.checkpoints": "max_epochs",
    "features.warmup_batch_size": "max_batch_size",
    "features.warmup_max_items": "max_items",
    "features.warmup_fallback_items": "max_items",
    "runtime.batch_size": "max_batch_size",
}


class TooManyJobs(ProblemError):
    """A tenant has ``max_active_jobs_per_tenant`` jobs queued or running already."""

    status, slug, title = 429, "too-many-jobs", "Too many jobs"


def invalid(field: str, message: str) -> UnprocessableRequest:
    """A 422 problem naming ``field`` (``errors: [{field, message}]``)."""
    return UnprocessableRequest(
        f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def check_finite(value: Any, field: str = "") -> None:
    """Raise a 422 naming the first NaN or Infinity found in ``value`` (nested mappings
    and lists; ``field`` is the dotted path so far)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid(field or "body", f"must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_finite(item, f"{field}.{index}")


def check_caps(config: dict[str, Any], settings: Settings) -> None:
    """Raise a 422 for the first knob of the resolved ``config`` (stored, in the engine's
    names) above its cap."""
    public = public_config(config)
    for field, setting in CAPS.items():
        section, _, knob = field.partition(".")
        value = (public.get(section) or {}).get(knob)
        cap = getattr(settings, setting)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise invalid(field, f"must be at most {cap} on this server (GRAIT_{setting.upper()})")


def check_active_jobs(session: Session, tenant_id: str, settings: Settings) -> None:
    """Raise 429 when the tenant already has ``max_active_jobs_per_tenant`` jobs queued,
    running or cancelling. Side effect: locks the tenant's row (PostgreSQL) until the
    caller's commit, so concurrent creates of one tenant count one after the other."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    active = JobRepository(session, tenant_id).count_active()
    cap = settings.max_active_jobs_per_tenant
    if (active or 0) >= cap:
        raise TooManyJobs(
            f"this tenant already has {active} jobs queued or running, the most this server "
            f"allows (GRAIT_MAX_ACTIVE_JOBS_PER_TENANT={cap}); wait for one to finish or "
            "cancel one",
            limit=cap,
        )
