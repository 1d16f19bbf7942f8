"""Knobs of the knowledge probe (METHOD.md stage 1), validated.

Torch-free, so the service can validate a job's probe settings before queueing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from grait_engine.errors import FieldError
from grait_engine.knobs import KnobConfig, choice, integer, knob, number
from grait_engine.prompts import STYLES


class ProbeConfigError(FieldError):
    """A knob with a bad value (see ``FieldError``)."""


@dataclass(frozen=True)
class ProbeConfig(KnobConfig):
    """What the probe computes. Every knob changes the result, so all of them are hashed.

    - ``style``: prompt style (``basic`` or ``refuse``; METHOD.md probes with ``basic``).
    - ``choice_shots`` / ``open_shots``: few-shot examples per prompt (defaults 5 and 3).
    - ``n_samples`` (N), ``temperature`` (T > 0), ``max_new_tokens``: the ``open`` sampling.
      Top-k / top-p are off: samples come from the full softmax at temperature T.

    Speed-only settings (batch size, shard size) are arguments of ``run_probe``, not knobs.
    """

    error: ClassVar[type[FieldError]] = ProbeConfigError

    style: str = knob("basic", choice(STYLES))
    choice_shots: int = knob(5, integer(low=0))
    open_shots: int = knob(3, integer(low=0))
    n_samples: int = knob(10, integer(low=1))
    # A float, so to_dict() and the content hash do not depend on 1 vs 1.0.
    temperature: float = knob(1.0, number(above=0, as_float=True))
    max_new_tokens: int = knob(32, integer(low=1))

    def shots_for(self, task: str) -> int:
        """The number of few-shot examples for ``task`` (``choice`` or ``open``)."""
        return self.choice_shots if task == "choice" else self.open_shots
