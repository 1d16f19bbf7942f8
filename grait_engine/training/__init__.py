"""Stage 6: the weighted LoRA fine-tune, checkpointed and resumable (METHOD.md).

Public API::

    from grait_engine.training import Example, TrainingConfig, run_training
    result = run_training(m0, tokenizer, examples, TrainingConfig(), train_dir, seed=0)

``config`` and this ``__init__`` are torch-free (the service validates hyperparameters with
``TrainingConfig``); the torch parts load on first use.
"""

from __future__ import annotations

from typing import Any

from grait_engine.training.config import TrainingConfig, TrainingConfigError

_LAZY = {
    "Example": "grait_engine.training.loss",
    "weighted_loss": "grait_engine.training.loss",
    "lr_factor": "grait_engine.training.loss",
    "run_training": "grait_engine.training.stage",
    "training_inputs_hash": "grait_engine.training.stage",
    "TrainingCancelled": "grait_engine.training.stage",
    "TrainingDiverged": "grait_engine.training.stage",
    "TrainingResult": "grait_engine.training.stage",
}

__all__ = ["TrainingConfig", "TrainingConfigError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
