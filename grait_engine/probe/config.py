"""Knobs of the knowledge probe (METHOD.md stage 1), validated.

Torch-free, so the service can validate a job's probe settings before queueing it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from grait_engine.errors import FieldError, reject_unknown_keys
from grait_engine.prompts import STYLES


class ProbeConfigError(FieldError):
    """A knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class ProbeConfig:
    """What the probe computes. Every knob changes the result, so all of them are hashed.

    - ``style``: prompt style (``basic`` or ``refuse``; METHOD.md probes with ``basic``).
    - ``choice_shots`` / ``open_shots``: few-shot examples per prompt (defaults 5 and 3).
    - ``n_samples`` (N), ``temperature`` (T > 0), ``max_new_tokens``: the ``open`` sampling.
      Top-k / top-p are off: samples come from the full softmax at temperature T.

    Speed-only settings (batch size, shard size) are arguments of ``run_probe``, not knobs.
    """

    style: str = "basic"
    choice_shots: int = 5
    open_shots: int = 3
    n_samples: int = 10
    temperature: float = 1.0
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ProbeConfigError("style", f"{self.style!r} is not one of {STYLES}")
        for name, low in (("choice_shots", 0), ("open_shots", 0), ("n_samples", 1)):
            _integer(name, getattr(self, name), low)
        _integer("max_new_tokens", self.max_new_tokens, 1)
        value = self.temperature
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProbeConfigError("temperature", f"must be a number, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ProbeConfigError("temperature", f"must be finite and > 0, got {value}")
        # Canonical type, so to_dict() and the content hash do not depend on 1 vs 1.0.
        object.__setattr__(self, "temperature", float(value))

    def shots_for(self, task: str) -> int:
        """The number of few-shot examples for ``task`` (``choice`` or ``open``)."""
        return self.choice_shots if task == "choice" else self.open_shots

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ProbeConfig:
        """Build from a JSON-like dict; unknown keys are errors (a typo must not be ignored)."""
        reject_unknown_keys(cls, values, ProbeConfigError)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every knob, JSON-serialisable (the probe's part of a content address)."""
        return asdict(self)


def _integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProbeConfigError(name, f"must be an integer, got {value!r}")
    if value < low:
        raise ProbeConfigError(name, f"must be >= {low}, got {value}")
