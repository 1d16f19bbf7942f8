"""Scoring sampled open answers: alias matching and agreement (METHOD.md stage 1).

Torch-free, so the service can score or display probe results without the model stack.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

# Typographic quotes that tokenizers and data sets mix freely with the ASCII ones.
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_SPACE = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Lower-cased, curly quotes made straight, whitespace runs collapsed to one space, stripped."""
    return _SPACE.sub(" ", text.translate(_QUOTES).lower()).strip()


def contains_alias(sample: str, aliases: Sequence[str]) -> bool:
    """True when the normalised ``sample`` contains some normalised, non-empty alias."""
    answer = normalize_answer(sample)
    return any(alias and alias in answer for alias in map(normalize_answer, aliases))


def open_correctness(samples: Sequence[str], aliases: Sequence[str]) -> float:
    """``c_i``: the share of ``samples`` that contain a gold alias (0.0 for no samples)."""
    if not samples:
        return 0.0
    return sum(contains_alias(s, aliases) for s in samples) / len(samples)


def agreement(samples: Sequence[str]) -> float:
    """``s_i``: the share of sample pairs whose normalised answers are equal.

    Counted from the answer frequencies (``sum_a C(n_a, 2) / C(N, 2)``), so it is O(N).
    One sample (no pairs) counts as full agreement, 1.0.
    """
    n = len(samples)
    if n < 2:
        return 1.0
    counts = Counter(normalize_answer(s) for s in samples)
    pairs = sum(c * (c - 1) // 2 for c in counts.values())
    return pairs / (n * (n - 1) // 2)
