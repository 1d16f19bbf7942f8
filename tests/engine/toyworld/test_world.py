"""The toy world's generator (no training): facts, classes, splits, corpus, determinism."""

from __future__ import annotations

import random
from collections import Counter

from grait_engine.prompts import REFUSAL, question_block
from grait_engine.toyworld.config import preset
from grait_engine.toyworld.corpus import make_corpus
from grait_engine.toyworld.qa import make_datasets, split_facts
from grait_engine.toyworld.world import IN_DOMAIN, OUT_OF_DOMAIN, make_facts, make_relations


def generate(seed: int = 0):
    config = preset("tiny", seed)
    relations = make_relations(random.Random(f"relations:{seed}"))
    facts = make_facts(config, relations)
    corpus = make_corpus(config, facts, relations)
    datasets = make_datasets(split_facts(facts, config.id_test_share, seed), relations, seed)
    return config, facts, corpus, datasets


def test_same_seed_same_world_and_other_seed_differs():
    first, second, other = generate(0), generate(0), generate(1)
    assert first[1] == second[1] and first[2].documents == second[2].documents
    assert first[1] != other[1]


def test_every_fact_has_a_class_and_never_seen_facts_never_appear():
    config, facts, corpus, _ = generate()
    assert {fact.seen_class for fact in facts} == {"many", "rare", "never"}
    text = "\n".join(corpus.documents)
    for fact in facts:
        seen = corpus.seen[fact.id]
        if fact.seen_class == "never":
            assert seen == 0
            # the question about a never-seen fact is not in the corpus either
            question = f"{fact.person} " if fact.relation == "birthplace" else None
            assert question is None or f"The birthplace of {fact.person}" not in text
        elif fact.seen_class == "rare":
            assert seen <= 2
        else:
            assert seen >= 0.8 * config.many_min


def test_names_are_unique_per_person():
    _, facts, _, _ = generate()
    people = {fact.person for fact in facts}
    firsts = Counter(name.split()[0] for name in people)
    lasts = Counter(name.split()[1] for name in people)
    assert max(firsts.values()) == 1 and max(lasts.values()) == 1


def test_splits_are_disjoint_and_ood_asks_another_relation():
    _, _, _, datasets = generate()
    for task, splits in datasets.items():
        ids = {name: {item.id for item in items} for name, items in splits.items()}
        assert not ids["train"] & ids["test_id"] and not ids["train"] & ids["test_ood"]
        relations = {
            name: {item.meta["relation"] for item in items} for name, items in splits.items()
        }
        assert relations["train"] <= set(IN_DOMAIN) and relations["test_id"] <= set(IN_DOMAIN)
        assert relations["test_ood"] == set(OUT_OF_DOMAIN)
        for item in splits["train"]:
            assert item.task == task
            if task == "choice":
                assert list(item.choices) == ["A", "B", "C", "D"] and item.answer in item.choices
                assert len(set(item.choices.values())) == 4


def test_choice_gold_letters_are_spread():
    _, _, _, datasets = generate()
    letters = Counter(item.answer for item in datasets["choice"]["train"])
    assert set(letters) == {"A", "B", "C", "D"}
    assert min(letters.values()) > 0.1 * sum(letters.values())


def test_corpus_uses_both_prompt_styles_and_some_refusals():
    _, _, corpus, _ = generate()
    text = "\n".join(corpus.documents)
    assert "reply with I don't know." in text  # refuse instruction
    assert "multiple choice questions (with answers).\n\nQuestion" in text  # basic choice
    assert text.count(f"Answer: {REFUSAL}") > 0


def test_choice_questions_appear_verbatim_only_for_seen_facts():
    _, facts, corpus, datasets = generate()
    text = "\n".join(corpus.documents)
    classes = {fact.id: fact.seen_class for fact in facts}
    items = [item for split in datasets["choice"].values() for item in split]
    for item in items:
        block = question_block(item)
        if classes[item.id] == "never":
            assert block not in text
        elif classes[item.id] == "many":
            assert block in text


def test_each_person_covers_every_letter_and_letters_follow_values():
    _, facts, _, datasets = generate()
    letters_by_person: dict[str, set[str]] = {}
    by_id = {fact.id: fact for fact in facts}
    for item in (item for split in datasets["choice"].values() for item in split):
        fact = by_id[item.id]
        letters_by_person.setdefault(fact.person, set()).add(item.answer)
        assert item.choices[item.answer] == fact.value
    assert all(letters == {"A", "B", "C", "D"} for letters in letters_by_person.values())
