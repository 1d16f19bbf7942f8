"""The body of ``POST /v1/jobs`` and its resolution into a stored, echoed job config.

Resolution checks the model against the allowlist, the datasets against the tenant's own
(same task), and every method and stage knob with the engine's torch-free validator
(``grait_engine.pipeline.knobs.JobKnobs``), filling in every default, then the operator's
limits (``limits``: no NaN or Infinity anywhere, count-like knobs under their caps). The
stored config is in the engine's vocabulary (``training``, not ``hyperparameters``: see
``vocabulary``). Problems raise ``UnprocessableRequest`` with ``errors: [{field, message}]``
in the request's names.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from app.datasets.repository import DatasetRepository
from app.db.models import dataset_refs
from app.jobs.limits import check_caps, check_finite, invalid
from app.jobs.vocabulary import API_NAMES, engine_names, request_field
from app.settings import Settings
from grait_engine.pipeline.knobs import KNOB_KEYS, JobConfigError, JobKnobs

DatasetId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
SetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
# The request fields that hold the knobs (``KNOB_KEYS`` in the API's names).
KNOB_FIELDS = tuple(API_NAMES.get(key, key) for key in KNOB_KEYS)

# The request fields that name datasets (``dataset_refs`` reads them).
DATASET_FIELDS = ("training_dataset", "shots_dataset", "eval_datasets")


class JobCreate(BaseModel):
    """``POST /v1/jobs``: what to tune, on which data, with which method and knobs."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="a name from GET /v1/models")
    task: Literal["open", "choice"]
    training_dataset: DatasetId
    eval_datasets: dict[SetName, DatasetId] = Field(min_length=1, max_length=10)
    shots_dataset: DatasetId | None = Field(
        default=None, description="the probe's few-shot examples (a dev split); none: 0-shot"
    )
    method: dict[str, Any] = Field(
        description="{type: grait|cor_rait|corcer_rait|craft|van, n_ik, n_idk, ...grait knobs}"
    )
    hyperparameters: dict[str, Any] = Field(default_factory=dict, description="training knobs")
    probe: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, Any] = Field(default_factory=dict)
    runtime: dict[str, Any] = Field(
        default_factory=dict,
        description="{batch_size, memory_budget_mb, tf32, quantization}: how, not what "
        "(null or absent: the worker's default, else automatic)",
    )
    tau: float | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def request_sha256(self) -> str:
        """A digest of the request, to tell an idempotent replay from a conflicting reuse."""
        fields = self.model_dump(mode="json")
        if not self.runtime:
            # As before ``runtime`` existed: a request stored then replays with the same key.
            del fields["runtime"]
        if self.shots_dataset is None:  # likewise for ``shots_dataset``
            del fields["shots_dataset"]
        canonical = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def resolve_job(
    session: Session, tenant_id: str, body: JobCreate, settings: Settings
) -> dict[str, Any]:
    """The resolved config stored with the job and echoed back (every default filled in).

    Checks, in order: no NaN or Infinity anywhere in the request, the model is served,
    the datasets are the tenant's and of the job's task, every knob is valid, count-like
    knobs are under the server's caps. Side effect: the datasets' rows are share-locked
    until the caller commits (PostgreSQL), so a concurrent delete waits and then sees the
    new job using them (``datasets.service.delete_dataset`` answers 409)."""
    check_finite(body.model_dump(mode="python"))
    if body.model not in settings.models:
        raise invalid("model", f"{body.model!r} is not served here; see GET /v1/models")
    refs = dataset_refs(body.model_dump(include=set(DATASET_FIELDS)))
    check_datasets(session, tenant_id, refs, body.task)
    request = {name: getattr(body, name) for name in KNOB_FIELDS}
    if body.tau is None:
        del request["tau"]  # the engine's default
    try:
        knobs = JobKnobs.from_dict(engine_names(request))
    except JobConfigError as error:
        raise invalid(request_field(error.field), error.message) from None
    config = {
        "model": body.model,
        "task": body.task,
        "training_dataset": body.training_dataset,
        "eval_datasets": dict(body.eval_datasets),
        "shots_dataset": body.shots_dataset,
        **knobs.to_dict(),
    }
    check_caps(config, settings)
    return config


def check_datasets(session: Session, tenant_id: str, refs: dict[str, str], task: str) -> None:
    """422 naming the request field (``refs``: ``{field: dataset id}``) of a dataset that is
    not the tenant's or not of ``task``. Side effect: share-locks the datasets' rows until
    the caller commits (PostgreSQL), so a concurrent delete waits and then sees the new job
    using them (``datasets.service.delete_dataset`` answers 409)."""
    datasets = DatasetRepository(session, tenant_id)
    for field, dataset_id in refs.items():
        dataset = datasets.get_share_locked(dataset_id)
        if dataset is None:
            raise invalid(field, f"no dataset {dataset_id!r}")
        if dataset.task != task:
            raise invalid(field, f"dataset {dataset_id} is a {dataset.task} dataset, not {task}")
