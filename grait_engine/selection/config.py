"""Knobs of the selection and weighting stages (METHOD.md stages 4-5), validated.

Torch-free, so the service can validate a job's selection settings before queueing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from grait_engine.errors import FieldError
from grait_engine.knobs import BadKnob, KnobConfig, choice, integer, knob, number, shown

VARIANTS = ("greedy", "stratified", "o1_top", "random", "code_literal")
WEIGHTINGS = ("adaptive", "none", "dynamic")


class SelectionConfigError(FieldError):
    """A selection knob with a bad value (see ``FieldError``)."""


def _sign(value: Any) -> int:
    """A check: -1 or +1 (1.0 allowed), as an int."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value not in (-1, 1):
        raise BadKnob(f"must be -1 or +1, got {shown(value)}")
    return int(value)


@dataclass(frozen=True)
class SelectionConfig(KnobConfig):
    """What to select and how to weight it.

    - ``n_ik``: answered items kept (top by correctness ``c_i``); ``n_idk``: refusal items.
      Budgets larger than their pool are not errors: the stage takes the whole pool and says
      so in ``selection.json`` notes.
    - ``variant``: ``stratified`` (default: the greedy within seeded k-means strata of
      F_idk, budget split by stratum size), ``greedy`` (METHOD.md's, the paper's),
      ``o1_top``, ``random`` (seeded), ``code_literal``.
    - ``weighting``: ``adaptive`` (``w = mean_weight * N_idk * softmax(sign * alpha / T)``),
      ``none`` (all weights 1) or ``dynamic`` (``adaptive`` to start with, then recomputed
      by the fine-tune from the adapter being trained every ``reweight_every`` optimiser
      steps, or at each epoch's start when None; ``training.reweight``).
    - ``temperature`` T > 0, ``sign`` in {-1, +1}, ``mean_weight`` > 0 (the mean idk weight).
      ``sign=+1, mean_weight=0.5`` is the released code's formula.
    """

    error: ClassVar[type[FieldError]] = SelectionConfigError

    n_ik: int = knob(4000, integer(low=0))
    n_idk: int = knob(1000, integer(low=0))
    # "stratified", not the paper's "greedy": chosen on the medium world's validation split
    # (docs/method-analysis.md); the greedy alone collapses onto one group of the pool.
    variant: str = knob("stratified", choice(VARIANTS))
    weighting: str = knob("adaptive", choice(WEIGHTINGS))
    # Canonical types, so knobs() and the content hash do not depend on 1 vs 1.0.
    temperature: float = knob(0.05, number(above=0, as_float=True))
    sign: int = knob(-1, _sign)
    mean_weight: float = knob(1.0, number(above=0, as_float=True))
    reweight_every: int | None = knob(None, integer(low=1, optional=True))

    def knobs(self) -> dict[str, Any]:
        """Every resolved knob, JSON-serialisable (``to_dict()``)."""
        return self.to_dict()
