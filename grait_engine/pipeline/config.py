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

Relative paths are relative to the YAML file. Every problem raises ``JobConfigError`` naming
the field (``method.type``, ``probe.n_samples``, ``eval_datasets.id``...). Torch-free except
the model check, which imports ``modeling`` on use (it never loads weights).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grait_engine.errors import FieldError
from grait_engine.features.config import FeaturesConfig
from grait_engine.methods import METHODS
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.split import DEFAULT_TAU, check_tau
from grait_engine.selection.config import SelectionConfig
from grait_engine.training.config import TrainingConfig

TASKS = ("open", "choice")
TOP_KEYS = (
    "model", "task", "training_dataset", "eval_datasets", "method", "probe", "features",
    "training", "runtime", "tau", "seed", "device", "dtype", "shots_dataset",
)  # fmt: skip
SELECTION_KNOBS = ("variant", "weighting", "temperature", "sign", "mean_weight")


class JobConfigError(FieldError):
    """A bad job setting (see ``FieldError``)."""


@dataclass(frozen=True)
class JobConfig:
    """A validated job. ``model_path`` / ``model_revision`` are what ``model`` resolved to;
    ``selection`` is set for ``grait`` only (its ``n_ik`` / ``n_idk`` are the budget)."""

    model: str
    model_path: Path
    model_revision: str
    task: str
    training_dataset: Path
    eval_datasets: dict[str, Path]
    method: str
    n_ik: int
    n_idk: int
    selection: SelectionConfig | None
    probe: ProbeConfig
    features: FeaturesConfig
    training: TrainingConfig
    tau: float = DEFAULT_TAU
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    runtime: RuntimeConfig = RuntimeConfig()
    shots_dataset: Path | None = None

    def resolved(self) -> dict[str, Any]:
        """Every resolved value, JSON-ready (echoed in report.json)."""
        knobs = _Knobs(
            self.method, self.n_ik, self.n_idk, self.selection, self.probe, self.features,
            self.training, self.tau, self.seed, self.runtime,
        )  # fmt: skip
        return {
            "model": self.model,
            "model_path": str(self.model_path),
            "model_revision": self.model_revision,
            "task": self.task,
            "training_dataset": str(self.training_dataset),
            "shots_dataset": None if self.shots_dataset is None else str(self.shots_dataset),
            "eval_datasets": {k: str(v) for k, v in self.eval_datasets.items()},
            **knobs.to_dict(),
            "device": self.device,
            "dtype": self.dtype,
        }


def load_job_config(source: str | os.PathLike[str] | dict[str, Any]) -> JobConfig:
    """Read (YAML path) or take (dict) a job config and validate all of it.

    Relative dataset and model paths resolve against the YAML file's folder (the current
    folder for a dict). Raises JobConfigError naming the first bad field.
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
    knobs = _knobs(data)
    train = _dataset("training_dataset", data["training_dataset"], task, base)
    shots = data.get("shots_dataset")
    shots_path = None if shots is None else _dataset("shots_dataset", shots, task, base)
    evals = _eval_datasets(data["eval_datasets"], task, base)
    device, dtype = str(data.get("device", "cpu")), str(data.get("dtype", "float32"))
    path, revision = _model(str(data["model"]), device, dtype, base)
    return JobConfig(
        str(data["model"]), path, revision, task, train, evals, knobs.method, knobs.n_ik,
        knobs.n_idk, knobs.selection, knobs.probe, knobs.features, knobs.training,
        tau=knobs.tau, seed=knobs.seed, device=device, dtype=dtype, runtime=knobs.runtime,
        shots_dataset=shots_path,
    )  # fmt: skip


@dataclass(frozen=True)
class _Knobs:
    """The method and stage settings of a job: everything but model, data and device."""

    method: str
    n_ik: int
    n_idk: int
    selection: SelectionConfig | None
    probe: ProbeConfig
    features: FeaturesConfig
    training: TrainingConfig
    tau: float
    seed: int
    runtime: RuntimeConfig

    def to_dict(self) -> dict[str, Any]:
        """The ``KNOB_KEYS`` mapping, JSON-ready (the grait-only knobs for grait only)."""
        method: dict[str, Any] = {"type": self.method, "n_ik": self.n_ik, "n_idk": self.n_idk}
        if self.selection is not None:
            method |= {k: self.selection.knobs()[k] for k in SELECTION_KNOBS}
        return {
            "method": method,
            "probe": self.probe.to_dict(),
            "features": self.features.to_dict(),
            "training": self.training.to_dict(),
            "runtime": self.runtime.to_dict(),
            "tau": self.tau,
            "seed": self.seed,
        }


def _knobs(data: dict[str, Any]) -> _Knobs:
    """Validate ``method``, ``seed``, ``tau`` and the probe/features/training sections."""
    method, n_ik, n_idk, selection = _method(data["method"])
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise JobConfigError("seed", f"must be an integer >= 0, got {seed!r}")
    try:
        tau = check_tau(data.get("tau", DEFAULT_TAU))
    except ValueError as error:
        raise JobConfigError("tau", str(error)) from None
    return _Knobs(
        method, n_ik, n_idk, selection,
        _section("probe", ProbeConfig.from_dict, data.get("probe")),
        _section("features", FeaturesConfig.from_dict, data.get("features")),
        _section("training", TrainingConfig.from_dict, data.get("training")),
        tau, seed,
        _section("runtime", RuntimeConfig.from_dict, data.get("runtime")),
    )  # fmt: skip


KNOB_KEYS = ("method", "probe", "features", "training", "runtime", "tau", "seed")


def resolve_knobs(data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``KNOB_KEYS`` of a job, validated and with every default filled in.

    For the service, which checks a job's settings before it stores the job, without the
    model or the dataset files (torch-free, no file access). ``data`` must hold
    ``method``; other keys are ignored. Raises JobConfigError naming the field. The result
    is JSON-ready and, fed back to ``load_job_config``, gives the same settings.
    """
    if "method" not in data:
        raise JobConfigError("method", "required")
    return _knobs(data).to_dict()


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


def _method(value: Any) -> tuple[str, int, int, SelectionConfig | None]:
    """(type, n_ik, n_idk, selection config for grait) from the ``method`` mapping."""
    if not isinstance(value, dict):
        raise JobConfigError("method", "must be a mapping with at least 'type'")
    kind = value.get("type")
    if kind not in METHODS:
        raise JobConfigError("method.type", f"{kind!r} is not one of {METHODS}")
    unknown = sorted(set(value) - {"type", "n_ik", "n_idk", *SELECTION_KNOBS})
    if unknown:
        raise JobConfigError(f"method.{unknown[0]}", "unknown key")
    budget = {name: value.get(name, default) for name, default in (("n_ik", 4000), ("n_idk", 1000))}
    for name, n in budget.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise JobConfigError(f"method.{name}", f"must be an integer >= 1, got {n!r}")
    knobs = {k: value[k] for k in SELECTION_KNOBS if k in value}
    if kind != "grait":
        if knobs:
            raise JobConfigError(f"method.{next(iter(knobs))}", "only used by method grait")
        return kind, budget["n_ik"], budget["n_idk"], None
    selection = _section("method", SelectionConfig.from_dict, {**budget, **knobs})
    return kind, budget["n_ik"], budget["n_idk"], selection


def _section(name: str, build: Any, value: Any) -> Any:
    """``build(value or {})``, with the knob errors renamed ``name.<knob>``."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise JobConfigError(name, "must be a mapping")
    try:
        return build(value)
    except (ValueError, TypeError) as error:
        field = getattr(error, "field", None)
        message = getattr(error, "message", str(error))
        raise JobConfigError(f"{name}.{field}" if field else name, message) from None


def _dataset(field: str, value: Any, task: str, base: Path) -> Path:
    """A dataset path that exists and whose items are valid ``task`` items."""
    from grait_engine.records.validate import validate_file

    if not isinstance(value, str | os.PathLike) or not str(value):
        raise JobConfigError(field, "must be a file path")
    path = (base / Path(value).expanduser()).resolve()
    if not path.is_file():
        raise JobConfigError(field, f"no such file: {path}")
    summary = validate_file(path, task)  # type: ignore[arg-type]
    if not summary.ok:
        first = summary.problems[0] if summary.problems else "invalid"
        raise JobConfigError(field, f"{path.name} is not a valid {task} dataset: {first}")
    if summary.n_items == 0:
        raise JobConfigError(field, f"{path.name} holds no items")
    return path


def _eval_datasets(value: Any, task: str, base: Path) -> dict[str, Path]:
    if not isinstance(value, dict) or not value:
        raise JobConfigError("eval_datasets", "must be a non-empty mapping {name: path}")
    return {str(k): _dataset(f"eval_datasets.{k}", v, task, base) for k, v in value.items()}


def _model(name: str, device: str, dtype: str, base: Path) -> tuple[Path, str]:
    """The model's local path and revision (no weights loaded); checks device and dtype."""
    from grait_engine.modeling import ModelLoadError, ModelSpec, resolve_model

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
