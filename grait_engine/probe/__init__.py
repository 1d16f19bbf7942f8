"""Stages 1-2: the knowledge probe and the ik/idk split.

Public API::

    from grait_engine.probe import ProbeConfig, run_probe, run_split
    probe = run_probe(model, tokenizer, items, probe_dir, config=ProbeConfig(), seed=0)
    split = run_split(probe_dir, split_dir, tau=0.5)

``config``, ``answers``, ``metrics``, ``store`` and ``split`` are torch-free, and so is this
``__init__``: the torch parts load on first use.
"""

from __future__ import annotations

from grait_engine.lazy import lazy_exports
from grait_engine.probe.answers import agreement, contains_alias, normalize_answer, open_correctness
from grait_engine.probe.config import ProbeConfig, ProbeConfigError
from grait_engine.probe.metrics import auroc
from grait_engine.probe.split import SplitResult, load_split, run_split, split_document
from grait_engine.probe.store import ProbeIncompleteError, read_probe

_LAZY = {
    "run_probe": "grait_engine.probe.stage",
    "probe_inputs_hash": "grait_engine.probe.stage",
    "ProbeResult": "grait_engine.probe.stage",
    "ProbeCancelled": "grait_engine.probe.stage",
    "ProbeInputError": "grait_engine.probe.runner",
    "prepare": "grait_engine.probe.runner",
    "probe_items": "grait_engine.probe.runner",
    "PromptTooLongError": "grait_engine.probe.batching",
    "LetterTokenError": "grait_engine.probe.choice",
    "naive_probe": "grait_engine.probe.naive",
    "naive_items": "grait_engine.probe.naive",
}

__all__ = [
    "ProbeConfig",
    "ProbeConfigError",
    "ProbeIncompleteError",
    "SplitResult",
    "agreement",
    "auroc",
    "contains_alias",
    "load_split",
    "normalize_answer",
    "open_correctness",
    "read_probe",
    "run_split",
    "split_document",
    *_LAZY,
]


__getattr__ = lazy_exports(__name__, _LAZY)
