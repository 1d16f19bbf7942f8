"""Evaluation jobs: the request bodies and their resolution into a stored job config.

Two forms, one job kind (``evaluate``):

- ``POST /v1/jobs/{id}/evaluations`` (``EvaluationCreate``): a succeeded tune job's tuned
  model and its base model (both prompts) on new eval datasets of that job's task.
- ``POST /v1/evaluations`` (``BaseEvaluationCreate``): a served base model alone, with a
  0-shot knowledge probe of every eval set (the "what does my model know" report).

The stored (and echoed) config is ``{"kind": "evaluate", "model", "task", "eval_datasets",
"source_job_id", "runtime", "probe", "seed"}`` (``probe`` is None for a tuned model).
Problems are 422s naming the request field (``eval_datasets.<name>``, ``runtime.<knob>``,
``model``), as for tune jobs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.db.models import Job
from app.jobs.limits import check_caps, check_finite, invalid
from app.jobs.spec import DatasetId, SetName, check_datasets
from app.settings import Settings
from grait_engine.pipeline.runtime import RuntimeConfig, RuntimeConfigError
from grait_engine.probe.config import ProbeConfig

RUNTIME_DESCRIPTION = (
    "{batch_size, memory_budget_mb, tf32, quantization}: how, not what (null or absent: the "
    "worker's default; for a tuned model, quantization defaults to its tune job's)"
)


class EvaluationCreate(BaseModel):
    """``POST /v1/jobs/{id}/evaluations``: the eval datasets (``{name: dataset id}``) of
    the tune job's task, and optional runtime settings."""

    model_config = ConfigDict(extra="forbid")

    eval_datasets: dict[SetName, DatasetId] = Field(min_length=1, max_length=10)
    runtime: dict[str, Any] = Field(default_factory=dict, description=RUNTIME_DESCRIPTION)

    def request_sha256(self, source_job_id: str) -> str:
        """A digest of the request (and its job), to tell an idempotent replay apart."""
        return _digest({"source_job_id": source_job_id, **self.model_dump(mode="json")})


class BaseEvaluationCreate(BaseModel):
    """``POST /v1/evaluations``: a served base model, the task and the eval datasets."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="a name from GET /v1/models")
    task: Literal["open", "choice"]
    eval_datasets: dict[SetName, DatasetId] = Field(min_length=1, max_length=10)
    runtime: dict[str, Any] = Field(default_factory=dict, description=RUNTIME_DESCRIPTION)

    def request_sha256(self) -> str:
        return _digest(self.model_dump(mode="json"))


def _digest(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def knowledge_probe() -> dict[str, Any]:
    """The knowledge probe's knobs of a base-model evaluation: the defaults, 0-shot (an
    evaluation has no dev split to draw shots from)."""
    return ProbeConfig(choice_shots=0, open_shots=0).to_dict()


def resolve_tuned_evaluation(
    session: Session, source: Job, body: EvaluationCreate, settings: Settings
) -> dict[str, Any]:
    """The config of an evaluation of ``source`` (a succeeded tune job, checked by the
    caller): its model and task, the datasets checked like a tune job's, the runtime with
    the tune job's quantization unless the request sets one (its adapter was trained on
    that base)."""
    runtime = dict(body.runtime)
    if "quantization" not in runtime:
        runtime["quantization"] = (source.config.get("runtime") or {}).get("quantization")
    return _resolve(
        session,
        source.tenant_id,
        settings,
        model=source.model,
        task=source.task,
        eval_datasets=body.eval_datasets,
        runtime=runtime,
        source=source,
    )


def resolve_base_evaluation(
    session: Session, tenant_id: str, body: BaseEvaluationCreate, settings: Settings
) -> dict[str, Any]:
    """The config of a base-model evaluation (with its knowledge probe)."""
    return _resolve(
        session,
        tenant_id,
        settings,
        model=body.model,
        task=body.task,
        eval_datasets=body.eval_datasets,
        runtime=body.runtime,
        source=None,
    )


def _resolve(
    session: Session,
    tenant_id: str,
    settings: Settings,
    *,
    model: str,
    task: str,
    eval_datasets: dict[str, str],
    runtime: dict[str, Any],
    source: Job | None,
) -> dict[str, Any]:
    """Checks, in order: no NaN or Infinity, the model is served, every dataset is the
    tenant's and of ``task`` (share-locked until the commit on PostgreSQL, as for tune
    jobs), the runtime settings are valid, counts are under the server's caps."""
    check_finite({"runtime": runtime})
    if model not in settings.models:
        raise invalid("model", f"{model!r} is not served here; see GET /v1/models")
    refs = {f"eval_datasets.{name}": dataset_id for name, dataset_id in eval_datasets.items()}
    check_datasets(session, tenant_id, refs, task)
    try:
        resolved_runtime = RuntimeConfig.from_dict(runtime).to_dict()
    except RuntimeConfigError as error:
        raise invalid(f"runtime.{error.field}", error.message) from None
    except TypeError as error:  # a wrong type the dataclass could not take
        raise invalid("runtime", str(error)) from None
    config = {
        "kind": "evaluate",
        "model": model,
        "task": task,
        "eval_datasets": dict(eval_datasets),
        "source_job_id": source.id if source is not None else None,
        "runtime": resolved_runtime,
        "probe": None if source is not None else knowledge_probe(),
        "seed": int((source.config.get("seed") if source is not None else 0) or 0),
    }
    check_caps(config, settings)
    return config
