"""Grading rules, rates and THS (METHOD.md stage 7)."""

from __future__ import annotations

import pytest

from grait_engine.evaluation import classify, parse_letter, rates, ths, ths_note
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
