"""A whole job's settings (``grait run --config JOB.yaml``), validated before any stage runs.

YAML (or dict) keys::

    model: path or HF id        task: open | choice         seed: 0
    training_dataset: train.jsonl                            tau: 0.5
    shots_dataset: dev.jsonl    # optional: the probe's few-shot examples; absent: 0-shot
    eval_datasets: {id: test_id.jsonl, ood: test_ood.jsonl}  device: cpu   dtype: float32
    method: {type: grait|cor_rait|corcer_rait|craft|van, n_ik, n_idk,
             variant, weighting, temperature, sign, mean_weight}   # the last five: grait only
    probe: {...ProbeConfig}   features: {...FeaturesConfig}   training: {...TrainingConfig}
    runtime: {batch_size, memory_budget_mb, tf32, quantization}   # how, not what (RuntimeConfig)

The knobs (``method`` to ``seed``) become one ``JobKnobs`` (``pipeline.knobs``), which
``JobConfig`` holds and also gives flat (``config.n_ik``). Relative paths are relative to the
YAML file. Each dataset file is validated item by item, unless the caller validated it before
and passes its sha256 (the service's worker: ``load_job_config(..., validated=...)``). Every
problem raises ``JobConfigError`` naming the field (``method.type``, ``probe.n_samples``,
``eval_datasets.id``...). Torch-free except the model check, which imports ``modeling`` on
use (it never loads weights).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grait_engine.features.config import FeaturesConfig
from grait_engine.pipeline.knobs import KNOB_KEYS, JobConfigError, JobKnobs
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.probe.config import ProbeConfig
from grait_engine.selection.config import SelectionConfig
from grait_engine.training.config import TrainingConfig

__all__ = ["TASKS", "TOP_KEYS", "JobConfig", "JobConfigError", "JobKnobs", "load_job_config"]

TASKS = ("open", "choice")
PLACES = ("model", "task", "training_dataset", "eval_datasets", "device", "dtype", "shots_dataset")
TOP_KEYS = PLACES + KNOB_KEYS


@dataclass(frozen=True)
class JobConfig:
    """A validated job: what runs (``knobs``), on which model and data, and where.
    ``model_path`` / ``model_revision`` are what ``model`` resolved to."""

    model: str
    model_path: Path
    model_revision: str
    task: str
    training_dataset: Path
    eval_datasets: dict[str, Path]
    knobs: JobKnobs
    device: str = "cpu"
    dtype: str = "float32"
    shots_dataset: Path | None = None

    # The knobs read flat (``config.n_ik``), as the stages and the pipeline read them.
    @property
    def method(self) -> str:
        return self.knobs.method

    @property
    def n_ik(self) -> int:
        return self.knobs.n_ik

    @property
    def n_idk(self) -> int:
        return self.knobs.n_idk

    @property
    def selection(self) -> SelectionConfig | None:
        return self.knobs.selection

    @property
    def probe(self) -> ProbeConfig:
        return self.knobs.probe

    @property
    def features(self) -> FeaturesConfig:
        return self.knobs.features

    @property
    def training(self) -> TrainingConfig:
        return self.knobs.training

    @property
    def tau(self) -> float:
        return self.knobs.tau

    @property
    def seed(self) -> int:
        return self.knobs.seed

    @property
    def runtime(self) -> RuntimeConfig:
        return self.knobs.runtime

    def resolved(self) -> dict[str, Any]:
        """Every resolved value, JSON-ready (echoed in report.json)."""
        return {
            "model": self.model,
            "model_path": str(self.model_path),
            "model_revision": self.model_revision,
            "task": self.task,
            "training_dataset": str(self.training_dataset),
            "shots_dataset": None if self.shots_dataset is None else str(self.shots_dataset),
            "eval_datasets": {k: str(v) for k, v in self.eval_datasets.items()},
            **self.knobs.to_dict(),
            "device": self.device,
            "dtype": self.dtype,
        }


def load_job_config(
    source: str | os.PathLike[str] | dict[str, Any],
    *,
    validated: Mapping[str, str] | None = None,
) -> JobConfig:
    """Read (YAML path) or take (dict) a job config and validate all of it.

    Relative dataset and model paths resolve against the YAML file's folder (the current
    folder for a dict). ``validated``: ``{field: sha256}`` of dataset files whose items were
    validated before (the service's uploads; fields ``training_dataset``, ``shots_dataset``,
    ``eval_datasets.<name>``): such a file is checked by its sha256 instead of parsed again,
    and a file whose bytes changed since is an error. Raises JobConfigError naming the first
    bad field.
    """
    if isinstance(source, dict):
        data, base = dict(source), Path.cwd()
    else:
        data, base = _read_yaml(Path(source)), Path(source).resolve().parent
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise JobConfigError(unknown[0], f"unknown key; known: {list(TOP_KEYS)}")
    for key in ("model", "task", "training_dataset", "eval_datasets", "method"):
        if key not in data:
            raise JobConfigError(key, "required")
    task = data["task"]
    if task not in TASKS:
        raise JobConfigError("task", f"{task!r} is not one of {TASKS}")
    knobs = JobKnobs.from_dict(data)
    known = dict(validated or {})

    def dataset(field: str, value: Any) -> Path:
        return _dataset(field, value, task, base, known.get(field))

    train = dataset("training_dataset", data["training_dataset"])
    shots = data.get("shots_dataset")
    shots_path = None if shots is None else dataset("shots_dataset", shots)
    evals = _eval_datasets(data["eval_datasets"], dataset)
    device, dtype = str(data.get("device", "cpu")), str(data.get("dtype", "float32"))
    path, revision = _model(str(data["model"]), device, dtype, base)
    return JobConfig(
        model=str(data["model"]),
        model_path=path,
        model_revision=revision,
        task=task,
        training_dataset=train,
        eval_datasets=evals,
        knobs=knobs,
        device=device,
        dtype=dtype,
        shots_dataset=shots_path,
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise JobConfigError("config", f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise JobConfigError("config", f"not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise JobConfigError("config", "must be a mapping of settings")
    return data


def _dataset(field: str, value: Any, task: str, base: Path, sha256: str | None) -> Path:
    """A dataset path that exists and whose items are valid ``task`` items: parsed and
    checked here, or, given the ``sha256`` of the file as it was validated, that file."""
    from grait_engine.records.validate import validate_file

    if not isinstance(value, str | os.PathLike) or not str(value):
        raise JobConfigError(field, "must be a file path")
    path = (base / Path(value).expanduser()).resolve()
    if not path.is_file():
        raise JobConfigError(field, f"no such file: {path}")
    if sha256 is not None:
        if _file_sha256(path) != sha256:
            raise JobConfigError(
                field, f"{path.name} changed since it was validated (its sha256 differs)"
            )
        return path
    summary = validate_file(path, task)  # type: ignore[arg-type]
    if not summary.ok:
        first = summary.problems[0] if summary.problems else "invalid"
        raise JobConfigError(field, f"{path.name} is not a valid {task} dataset: {first}")
    if summary.n_items == 0:
        raise JobConfigError(field, f"{path.name} holds no items")
    return path


def _file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _eval_datasets(value: Any, dataset: Callable[[str, Any], Path]) -> dict[str, Path]:
    if not isinstance(value, dict) or not value:
        raise JobConfigError("eval_datasets", "must be a non-empty mapping {name: path}")
    return {str(k): dataset(f"eval_datasets.{k}", v) for k, v in value.items()}


def _model(name: str, device: str, dtype: str, base: Path) -> tuple[Path, str]:
    """The model's local path and revision (no weights loaded); checks device and dtype."""
    from grait_engine.model_files import ModelLoadError
    from grait_engine.modeling import ModelSpec, resolve_model

    local = base / Path(name).expanduser()
    target = str(local) if local.exists() else name
    try:
        spec = ModelSpec(target, device=device, dtype=dtype)
    except ValueError as error:
        field = "device" if "device" in str(error) else "dtype"
        raise JobConfigError(field, str(error)) from None
    try:
        resolved = resolve_model(spec)
    except ModelLoadError as error:
        raise JobConfigError("model", str(error)) from None
    return resolved.path, resolved.revision
