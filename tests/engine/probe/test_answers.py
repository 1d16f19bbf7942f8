"""Alias matching, agreement and AUROC: pure functions on known cases."""

from __future__ import annotations

import pytest

from grait_engine.probe.answers import agreement, contains_alias, normalize_answer, open_correctness
from grait_engine.probe.metrics import auroc


def test_normalize_answer():
    assert normalize_answer("  The\tEiffel \n Tower ") == "the eiffel tower"
    assert normalize_answer("O\u2019Brien \u201cX\u201d") == 'o\'brien "x"'


@pytest.mark.parametrize(
    ("sample", "aliases", "expected"),
    [
        ("Paris", ["paris"], True),
        ("It is PARIS, France", ["Paris"], True),  # substring, any case
        ("O\u2019Neill", ["O'Neill"], True),  # curly apostrophe in the sample
        ("O'Neill", ["O\u2018Neill"], True),  # curly apostrophe in the alias
        ("William   Shakespeare", ["william shakespeare"], True),  # whitespace runs
        ("Shakespeare", ["William Shakespeare"], False),  # the alias must be contained
        ("Rome", ["Paris", "Rome"], True),  # any alias
        ("anything", ["", "  "], False),  # an empty alias never matches
        ("", ["Paris"], False),
    ],
)
def test_contains_alias(sample, aliases, expected):
    assert contains_alias(sample, aliases) is expected


def test_open_correctness_and_agreement():
    samples = ["Paris", "paris ", "Rome", "Lyon"]
    assert open_correctness(samples, ["Paris"]) == 0.5
    assert open_correctness([], ["Paris"]) == 0.0
    # pairs: 6; equal after normalisation: (Paris, paris) -> 1/6
    assert agreement(samples) == pytest.approx(1 / 6)
    assert agreement(["a", "A", "a "]) == 1.0
    assert agreement(["a", "b", "c"]) == 0.0
    assert agreement(["only"]) == 1.0


def test_auroc_known_values():
    assert auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    # positives 0.8, 0.4; negatives 0.6, 0.4: pairs (0.8>0.6) 1, (0.8>0.4) 1, (0.4<0.6) 0,
    # (0.4=0.4) 1/2 -> 2.5 / 4
    assert auroc([0.8, 0.4, 0.6, 0.4], [True, True, False, False]) == 0.625
    assert auroc([0.5] * 4, [1, 0, 1, 0]) == 0.5


def test_auroc_rejects_bad_input():
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        auroc([0.1], [1, 0])
