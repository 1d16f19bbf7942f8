"""Grading rules, rates and THS (METHOD.md stage 7)."""

from __future__ import annotations

import pytest

from grait_engine.evaluation.grade import classify, parse_letter, rates, ths, ths_note
from grait_engine.records.item import Item

CHOICE = Item(id="c", question="Q?", choices={"A": "a", "B": "b", "C": "c", "D": "d"}, answer="C")
OPEN = Item(id="o", question="Where?", answers=("Paris", "City of Light"))


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ("C", "correct"),
        ("C.", "correct"),
        ("(C)", "correct"),
        ("C) c", "correct"),
        ("  C: because", "correct"),
        ("Answer: C", "correct"),  # a repeated cue is tolerated
        ("B", "wrong"),
        ("[B]", "wrong"),
        ("Answer", "unparsed"),  # the A of a word is not an option
        ("I think C", "unparsed"),  # only the start is read
        ("c", "unparsed"),  # lower case is not read
        ("E", "unparsed"),  # not one of the options
        ("", "unparsed"),
        ("Cat", "unparsed"),
        ("I don’t know", "refused"),  # curly apostrophe
        ("C, or I DON'T KNOW", "refused"),  # refusal wins
    ],
)
def test_choice_labels(output: str, label: str) -> None:
    assert classify(CHOICE, output) == label


@pytest.mark.parametrize(
    ("output", "label"),
    [
        ("Paris", "correct"),
        ("  it is   PARIS, France", "correct"),
        ("city  of\tlight", "correct"),
        ("London", "wrong"),
        ("", "wrong"),  # open outputs are never unparsed
        ("I don't know, but maybe Paris", "refused"),
        ("i don’t know.", "refused"),
    ],
)
def test_open_labels(output: str, label: str) -> None:
    assert classify(OPEN, output) == label


def test_parse_letter() -> None:
    assert parse_letter("(D) text") == "D"
    assert parse_letter("a dog") is None
    assert parse_letter("A") == "A"


def test_rates_sum_to_100() -> None:
    out = rates(["correct", "wrong", "refused", "unparsed", "correct", "wrong", "correct"])
    assert out["n"] == 7
    assert out["pc"] + out["pw"] + out["pr"] + out["unparsed"] == pytest.approx(100.0)
    assert out["pc"] == pytest.approx(300 / 7)
    assert rates([]) == {"n": 0, "pc": 0.0, "pw": 0.0, "pr": 0.0, "unparsed": 0.0}
    with pytest.raises(ValueError):
        rates(["maybe"])


@pytest.mark.parametrize(
    ("pc", "pw", "expected"), [(30, 20, 10), (30, 15, 15), (50, 0, 50), (100, 0, 100)]
)
def test_ths_check_values(pc: float, pw: float, expected: float) -> None:
    assert ths(pc, pw, 50, 50) == pytest.approx(expected)


def test_ths_published_example_and_undefined() -> None:
    value = ths(53.3, 9.6, 66.8, 33.1)
    assert value is not None and round(value, 1) == 33.9
    assert ths(50, 50, 50, 50) == 0.0  # init_basic against itself
    assert ths(10, 5, 20, 0) is None
    assert ths_note(0) is not None and ths_note(1.0) is None


def test_f1_is_simpleqa_harmonic_mean() -> None:
    from grait_engine.evaluation.grade import f1_score

    # Pc 30, Pw 20: accuracy given attempted 60, harmonic mean of 30 and 60 is 40.
    assert f1_score(30, 20) == pytest.approx(40.0)
    assert f1_score(50, 0) == pytest.approx(2 * 50 * 100 / 150)
    assert f1_score(0, 0) == 0.0 and f1_score(0, 40) == 0.0


def test_oracle_share_is_ths_over_pc0() -> None:
    from grait_engine.evaluation.grade import oracle_share

    assert oracle_share(34.0, 66.8) == pytest.approx(0.509, abs=1e-3)  # CRaFT on MMLU
    assert oracle_share(50.0, 50.0) == 1.0  # the abstention oracle itself
    assert oracle_share(None, 50.0) is None and oracle_share(10.0, 0.0) is None


def test_rates_by_known_separates_right_refusals_from_over_refusal() -> None:
    from grait_engine.evaluation.grade import rates_by_known

    labels = ["refused", "correct", "refused", "wrong", "correct", "refused"]
    known = [True, True, False, False, None, False]
    out = rates_by_known(labels, known)
    assert out is not None
    assert out["known"] == {"n": 2, "pc": 50.0, "pw": 0.0, "pr": 50.0}
    assert out["unknown"]["n"] == 3 and out["unknown"]["pr"] == pytest.approx(200 / 3)
    assert rates_by_known(["correct"], [None]) is None
