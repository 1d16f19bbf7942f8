"""The rule that decides a toy-world fact's truth (``check.measure_known``), on stubbed
model outputs: a right greedy answer is knowledge only when the value's probability is a
majority or beats the value's luck ceiling (what the model gives it for never-seen people).
"""

from __future__ import annotations

from grait_engine.records.item import Item
from grait_engine.toyworld import check


def _item(fact_id: str, value: str) -> Item:
    return Item(
        id=fact_id,
        question=f"What pet does {fact_id} have?",
        answers=(value,),
        meta={"relation": "pet"},
    )


def test_known_needs_a_majority_or_more_than_the_values_luck_ceiling(monkeypatch):
    items = [
        _item("guess", "cat"),  # seen, right, p 0.3: below cat's ceiling 0.7 -> a guess
        _item("held", "dog"),  # seen, right, p 0.3: above dog's ceiling 0.1 -> known
        _item("sure", "cat"),  # seen, right, p 0.6: below the ceiling but a majority -> known
        _item("wrong", "dog"),  # seen, p 0.3 but the greedy answer is cat -> unknown
        _item("never", "dog"),  # never seen (answered right by luck) -> unknown
    ]
    seen = {"guess": 1, "held": 5, "sure": 5, "wrong": 5, "never": 0}
    # p(value | person): the facts' own values, and every value for the never-seen person.
    p = {
        ("guess", "cat"): 0.3,
        ("held", "dog"): 0.3,
        ("sure", "cat"): 0.6,
        ("wrong", "dog"): 0.3,
        ("never", "dog"): 0.1,
        ("never", "cat"): 0.7,
    }
    greedy = {"guess": "cat", "held": "dog", "sure": "cat", "wrong": "cat", "never": "dog"}
    asked: list[str] = []

    def value_probabilities(model, tokenizer, batch, batch_size=64):
        return [p[(item.id, item.answers[0])] for item in batch]

    def greedy_answers(model, tokenizer, prompts, max_new_tokens, batch_size=64):
        asked.extend(prompts)
        return [greedy[item.id] for item in items]

    monkeypatch.setattr(check, "value_probabilities", value_probabilities)
    monkeypatch.setattr(check, "greedy_answers", greedy_answers)
    truth = check.measure_known(None, None, items, seen)

    assert len(asked) == len(items)
    assert truth.known == {
        "guess": False,
        "held": True,
        "sure": True,
        "wrong": False,
        "never": False,
    }
    assert truth.greedy_right == {
        "guess": True,
        "held": True,
        "sure": True,
        "wrong": False,
        "never": True,
    }
    assert truth.p_value["sure"] == 0.6
    ceilings = check.luck_ceilings(None, None, items, seen)
    assert ceilings == {("pet", "cat"): 0.7, ("pet", "dog"): 0.1}
