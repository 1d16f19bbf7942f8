"""Knobs of the selection and weighting stages (METHOD.md stages 4-5), validated.

Torch-free, so the service can validate a job's selection settings before queueing it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from grait_engine.errors import FieldError, reject_unknown_keys

VARIANTS = ("greedy", "o1_top", "random", "code_literal")
WEIGHTINGS = ("adaptive", "none")


class SelectionConfigError(FieldError):
    """A selection knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class SelectionConfig:
    """What to select and how to weight it.

    - ``n_ik``: answered items kept (top by correctness ``c_i``); ``n_idk``: refusal items.
      Budgets larger than their pool are not errors: the stage takes the whole pool and says
      so in ``selection.json`` notes.
    - ``variant``: ``greedy`` (default), ``o1_top``, ``random`` (seeded), ``code_literal``.
    - ``weighting``: ``adaptive`` (``w = mean_weight * N_idk * softmax(sign * alpha / T)``)
      or ``none`` (all weights 1).
    - ``temperature`` T > 0, ``sign`` in {-1, +1}, ``mean_weight`` > 0 (the mean idk weight).
      ``sign=+1, mean_weight=0.5`` is the released code's formula.
    """

    n_ik: int = 4000
    n_idk: int = 1000
    variant: str = "greedy"
    weighting: str = "adaptive"
    temperature: float = 0.05
    sign: int = -1
    mean_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("n_ik", "n_idk"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SelectionConfigError(name, f"must be an integer, got {value!r}")
            if value < 0:
                raise SelectionConfigError(name, f"must be >= 0, got {value}")
        if self.variant not in VARIANTS:
            raise SelectionConfigError("variant", f"{self.variant!r} is not one of {VARIANTS}")
        if self.weighting not in WEIGHTINGS:
            raise SelectionConfigError(
                "weighting", f"{self.weighting!r} is not one of {WEIGHTINGS}"
            )
        _positive_finite("temperature", self.temperature)
        _positive_finite("mean_weight", self.mean_weight)
        if isinstance(self.sign, bool) or self.sign not in (-1, 1):
            raise SelectionConfigError("sign", f"must be -1 or +1, got {self.sign!r}")
        # Store the canonical types, so knobs() and the content hash do not depend on 1 vs 1.0.
        object.__setattr__(self, "sign", int(self.sign))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "mean_weight", float(self.mean_weight))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SelectionConfig:
        """Build from a JSON-like dict; unknown keys are errors (a typo must not be ignored)."""
        reject_unknown_keys(cls, values, SelectionConfigError)
        return cls(**values)

    def knobs(self) -> dict[str, Any]:
        """Every resolved knob, JSON-serialisable."""
        return asdict(self)


def _positive_finite(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SelectionConfigError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SelectionConfigError(name, f"must be finite and > 0, got {value!r}")
