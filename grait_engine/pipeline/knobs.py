"""A job's knobs: its method and stage settings, everything but model, data and device.

``JobKnobs`` is the one typed form of them. ``JobKnobs.from_dict`` validates the
``KNOB_KEYS`` of a job mapping (a YAML job, a request of the service, a stored job) and
fills in every default; ``to_dict`` gives them back JSON-ready, in the same vocabulary
(``training``, not the API's ``hyperparameters``). ``from_dict(k.to_dict()) == k``: the
service stores ``to_dict()`` and the worker builds the job from it unchanged.

Every problem raises ``JobConfigError`` naming the field (``method.type``,
``training.epochs``...). Torch-free and without file access: the service imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from grait_engine.errors import FieldError
from grait_engine.features.config import FeaturesConfig
from grait_engine.methods import METHODS
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.probe.config import ProbeConfig
from grait_engine.selection.config import SelectionConfig
from grait_engine.split.stage import DEFAULT_TAU, check_tau
from grait_engine.training.config import TrainingConfig

KNOB_KEYS = ("method", "probe", "features", "training", "runtime", "tau", "seed")
# The ``method`` keys that only ``grait`` takes (its selection's knobs).
SELECTION_KNOBS = ("variant", "weighting", "temperature", "sign", "mean_weight", "reweight_every")
DEFAULT_BUDGET = {"n_ik": 4000, "n_idk": 1000}


class JobConfigError(FieldError):
    """A bad job setting (see ``FieldError``)."""


@dataclass(frozen=True)
class JobKnobs:
    """The method and stage settings of a job; ``selection`` is set for ``grait`` only (its
    ``n_ik`` / ``n_idk`` are the budget of the other methods too)."""

    method: str
    n_ik: int
    n_idk: int
    selection: SelectionConfig | None
    probe: ProbeConfig
    features: FeaturesConfig
    training: TrainingConfig
    tau: float = DEFAULT_TAU
    seed: int = 0
    runtime: RuntimeConfig = RuntimeConfig()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobKnobs:
        """Validate the ``KNOB_KEYS`` of ``data`` (other keys are the caller's: ignored).
        ``method`` is required; an absent or null section takes its defaults."""
        if "method" not in data:
            raise JobConfigError("method", "required")
        method, n_ik, n_idk, selection = _method(data["method"])
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise JobConfigError("seed", f"must be an integer >= 0, got {seed!r}")
        try:
            tau = check_tau(data.get("tau", DEFAULT_TAU))
        except ValueError as error:
            raise JobConfigError("tau", str(error)) from None
        return cls(
            method,
            n_ik,
            n_idk,
            selection,
            probe=_section("probe", ProbeConfig.from_dict, data.get("probe")),
            features=_section("features", FeaturesConfig.from_dict, data.get("features")),
            training=_section("training", TrainingConfig.from_dict, data.get("training")),
            tau=tau,
            seed=seed,
            runtime=_section("runtime", RuntimeConfig.from_dict, data.get("runtime")),
        )

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


def _method(value: Any) -> tuple[str, int, int, SelectionConfig | None]:
    """(type, n_ik, n_idk, selection config for grait) from the ``method`` mapping."""
    if not isinstance(value, dict):
        raise JobConfigError("method", "must be a mapping with at least 'type'")
    kind = value.get("type")
    if kind not in METHODS:
        raise JobConfigError("method.type", f"{kind!r} is not one of {METHODS}")
    unknown = sorted(set(value) - {"type", *DEFAULT_BUDGET, *SELECTION_KNOBS})
    if unknown:
        raise JobConfigError(f"method.{unknown[0]}", "unknown key")
    budget = {name: value.get(name, default) for name, default in DEFAULT_BUDGET.items()}
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


def _section(name: str, build: Callable[[dict[str, Any]], Any], value: Any) -> Any:
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
