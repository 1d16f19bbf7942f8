"""Stages 4-5: influence-based selection of ik/idk items and adaptive idk weights.

Public API::

    from grait_engine.selection import SelectionConfig, PoolSplit, run_selection
    result = run_selection(SelectionConfig(n_ik=4000, n_idk=1000), split, features_dir, out_dir)

``config`` and ``inputs`` are torch-free (the service may import them); this package's
``__init__`` stays torch-free too and loads the torch parts on first use.
"""

from __future__ import annotations

from grait_engine.lazy import lazy_exports
from grait_engine.selection.config import (
    VARIANTS,
    WEIGHTINGS,
    SelectionConfig,
    SelectionConfigError,
)
from grait_engine.selection.inputs import PoolSplit, SelectionInputError

_LAZY = {
    "run_selection": "grait_engine.selection.select",
    "compute_selection": "grait_engine.selection.select",
    "SelectionResult": "grait_engine.selection.select",
    "SelectionCancelled": "grait_engine.selection.select",
    "GreedyTuning": "grait_engine.selection.greedy",
}

__all__ = [
    "VARIANTS",
    "WEIGHTINGS",
    "PoolSplit",
    "SelectionConfig",
    "SelectionConfigError",
    "SelectionInputError",
    *_LAZY,
]


__getattr__ = lazy_exports(__name__, _LAZY)
