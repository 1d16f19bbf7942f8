"""Stage 7: greedy 0-shot evaluation, grading, rates and THS (METHOD.md).

Public API::

    from grait_engine.evaluation import classify, rates, ths, evaluate_set
    block = evaluate_set(m0, tokenizer, test_items, eval_dir, tuned_model=m0_with_adapter)

``grade`` and this ``__init__`` are torch-free; the decoding parts load on first use.
"""

from __future__ import annotations

from grait_engine.evaluation.grade import (
    LABELS,
    Label,
    classify,
    is_refusal,
    parse_letter,
    rates,
    ths,
    ths_note,
)
from grait_engine.lazy import lazy_exports

_LAZY = {
    "evaluate_model": "grait_engine.evaluation.evaluate",
    "evaluate_set": "grait_engine.evaluation.evaluate",
    "EvaluationCancelled": "grait_engine.evaluation.evaluate",
    "DEFAULT_MAX_NEW_TOKENS": "grait_engine.evaluation.evaluate",
    "greedy_outputs": "grait_engine.evaluation.decode",
}

__all__ = [
    "LABELS",
    "Label",
    "classify",
    "is_refusal",
    "parse_letter",
    "rates",
    "ths",
    "ths_note",
    *_LAZY,
]


__getattr__ = lazy_exports(__name__, _LAZY)
