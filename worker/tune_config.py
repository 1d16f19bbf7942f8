"""The engine's ``JobConfig`` of a stored tune job.

The service stores a tune job's config in the engine's vocabulary (``app.jobs.vocabulary``),
knobs resolved, so they go to ``load_job_config`` as stored: one call builds and checks them
(``JobKnobs.from_dict``). The worker fills in where the job runs: the model's path, the dataset
files, the device and dtype it computes with, and its runtime defaults where the job left one
unset. The dataset files were validated at upload: each is checked against the sha256 of its
dataset row instead of being parsed again, and a file whose bytes changed since fails the job
(``invalid_config``, naming the field).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from app.settings import Settings
from worker.compute import Compute

if TYPE_CHECKING:
    from grait_engine.pipeline.config import JobConfig
    from worker.job_context import JobRow


def tune_job_config(row: JobRow, model: str, settings: Settings, compute: Compute) -> JobConfig:
    """The ``JobConfig`` of tune job ``row`` on ``model`` (a local path or HF id). Raises
    JobConfigError naming the field of a bad setting or a changed dataset file."""
    from grait_engine.pipeline.config import load_job_config

    paths = row.dataset_paths
    data = dict(row.config)
    data["model"] = model
    data["training_dataset"] = paths["training_dataset"]
    data["shots_dataset"] = paths.get("shots_dataset")
    data["eval_datasets"] = row.eval_paths()
    data["device"], data["dtype"] = compute.device, compute.dtype
    loaded = load_job_config(data, validated=row.dataset_sha256)
    runtime = loaded.runtime.with_defaults(settings.batch_size, settings.memory_budget_mb)
    return dataclasses.replace(loaded, knobs=dataclasses.replace(loaded.knobs, runtime=runtime))
