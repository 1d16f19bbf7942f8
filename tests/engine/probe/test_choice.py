"""The choice probe: batched vs naive parity, record arithmetic, letter tokens."""

from __future__ import annotations

import math

import pytest

from grait_engine.probe.choice import LetterTokenError, choice_record, letter_token_ids
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.naive import naive_probe
from grait_engine.probe.runner import prepare, probe_items
from tests.engine.probe.pools import choice_items

CONFIG = ProbeConfig(choice_shots=2)


def test_batched_matches_naive_within_1e_4(tiny):
    model, tokenizer = tiny
    items = choice_items(14)
    prepared = prepare(model, tokenizer, items, CONFIG, None, seed=0)
    lengths = {len(e) for e in prepared.encoded}
    assert len(lengths) > 3  # prompts of many lengths: batches are padded
    batched = probe_items(model, tokenizer, prepared, range(len(items)), CONFIG, 0, batch_size=5)
    naive = naive_probe(model, tokenizer, items, CONFIG, seed=0)
    assert [r["id"] for r in batched] == [i.id for i in items]
    worst = max(
        abs(b["probs"][k] - n["probs"][k])
        for b, n in zip(batched, naive, strict=True)
        for k in "ABCD"
    )
    assert worst < 1e-4
    for b, n in zip(batched, naive, strict=True):
        assert b["correctness"] == pytest.approx(n["correctness"], abs=1e-4)
        assert b["certainty"] == pytest.approx(n["certainty"], abs=1e-4)


def test_record_arithmetic(tiny):
    model, tokenizer = tiny
    items = choice_items(4)
    prepared = prepare(model, tokenizer, items, CONFIG, None, seed=0)
    for item, record in zip(
        items, probe_items(model, tokenizer, prepared, range(4), CONFIG, 0, 4), strict=True
    ):
        probs = record["probs"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert record["correctness"] == probs[item.answer]
        entropy = -sum(p * math.log(p) for p in probs.values())
        assert record["certainty"] == pytest.approx(-entropy)


def test_choice_record_is_stable_for_tiny_probabilities():
    item = choice_items(1)[0]  # gold "A"
    record = choice_record(item, {"A": -1000.0, "B": -1000.0, "C": -2000.0, "D": -2000.0})
    assert record["correctness"] == pytest.approx(0.5)
    assert record["certainty"] == pytest.approx(-math.log(2))


def test_letter_tokens_of_the_tiny_tokenizer(tiny):
    _, tokenizer = tiny
    letters = letter_token_ids(tokenizer, "ABCD")
    # The tiny BPE has no " A" merge: the space is a shared prefix token, read past.
    assert tokenizer.decode(list(letters.prefix)) == " "
    assert [tokenizer.decode([letters.ids[k]]) for k in "ABCD"] == list("ABCD")


class _FakeTokenizer:
    """One id per character, except that B and C both start with token 200 (as a BPE may
    split rare letters into a shared byte and a distinct one)."""

    def __call__(self, text, add_special_tokens=False):
        ids = []
        for c in text:
            ids += [200, ord(c)] if c in "BC" else [ord(c)]
        return {"input_ids": ids}


def test_indistinct_letters_are_an_error():
    with pytest.raises(LetterTokenError, match="'B' and 'C' start with the same token"):
        letter_token_ids(_FakeTokenizer(), "ABC", context="answer:")
    # Letters that differ only after a shared prefix are fine: the prefix is read past.
    letters = letter_token_ids(_FakeTokenizer(), "BC", context="answer:")
    assert letters.prefix == (32, 200) and letters.ids == {"B": 66, "C": 67}


def test_merging_continuation_is_an_error():
    class Merging(_FakeTokenizer):
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [hash(text) % 1000]}  # no token boundary after the context

    with pytest.raises(LetterTokenError, match="does not extend"):
        letter_token_ids(Merging(), "AB")
