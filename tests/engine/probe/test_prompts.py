"""Probe prompts: shot choice, special tokens, chat templates."""

from __future__ import annotations

from grait_engine.modeling import ModelSpec, load_model
from grait_engine.probe.batching import choose_shots, shot_index
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.naive import naive_probe
from grait_engine.probe.runner import prepare, probe_items
from grait_engine.records.item import Item
from tests.engine.helpers import save_tiny_model
from tests.engine.probe.pools import choice_items, open_items


def _subject_pool() -> list[Item]:
    items = choice_items(40)
    return [
        Item(id=i.id, question=i.question, choices=i.choices, answer=i.answer, subject=s)
        for i, s in zip(items, ["geo", "art"] * 20, strict=True)
    ]


def test_shots_never_the_query_prefer_its_subject_and_are_seeded():
    pool = _subject_pool()
    index = shot_index(pool)
    for query in pool[:10]:
        shots = choose_shots(query, index, 5, seed=0)
        assert len(shots) == 5 and query.id not in {s.id for s in shots}
        assert {s.subject for s in shots} == {query.subject}
        assert choose_shots(query, index, 5, seed=0) == shots
    assert choose_shots(pool[0], index, 5, seed=1) != choose_shots(pool[0], index, 5, seed=0)
    assert choose_shots(pool[0], index, 0, seed=0) == []
    assert len(choose_shots(pool[0], shot_index(pool[:3]), 5, seed=0)) == 2  # small pool


def test_shots_come_from_the_given_pool(tiny):
    model, tokenizer = tiny
    items, dev = open_items(3), open_items(4, prefix="dev")
    prepared = prepare(model, tokenizer, items, ProbeConfig(open_shots=2), dev, seed=0)
    text = tokenizer.decode(list(prepared.encoded[0]))
    assert text.startswith("<s>") and text.count("<s>") == 1  # BOS from the tokenizer, once
    assert text.count("Question:") == 3 and text.endswith("Answer:")


def test_chat_template_model(tmp_path):
    model, tokenizer = load_model(
        ModelSpec(str(save_tiny_model(tmp_path, with_chat_template=True)))
    )
    items = choice_items(5)
    config = ProbeConfig(choice_shots=1)
    prepared = prepare(model, tokenizer, items, config, None, seed=0)
    text = tokenizer.decode(list(prepared.encoded[0]))
    assert text.startswith("<|user|>") and "<|assistant|>\nAnswer:" in text
    batched = probe_items(model, tokenizer, prepared, range(5), config, 0, batch_size=2)
    naive = naive_probe(model, tokenizer, items, config, seed=0)
    for b, n in zip(batched, naive, strict=True):
        assert max(abs(b["probs"][k] - n["probs"][k]) for k in "ABCD") < 1e-4
