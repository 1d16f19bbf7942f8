"""The toy world's generator (no training): facts, classes, splits, corpus, determinism."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from grait_engine.prompts import REFUSAL, question_block
from grait_engine.toyworld.config import preset
from grait_engine.toyworld.corpus import make_corpus
from grait_engine.toyworld.qa import make_datasets, split_facts
from grait_engine.toyworld.world import (
    DOMAINS,
    IN_DOMAIN,
    OUT_OF_DOMAIN,
    make_facts,
    make_relations,
)


def generate(seed: int = 0):
    config = preset("tiny", seed)
    relations = make_relations(random.Random(f"relations:{seed}"))
    facts = make_facts(config, relations)
    corpus = make_corpus(config, facts, relations)
    datasets = make_datasets(split_facts(facts, config), relations, seed)
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


def _medium(seed: int = 0):
    """The medium (popularity design) world without its corpus or model."""
    config = preset("medium", seed)
    relations = make_relations(random.Random(f"relations:{seed}"), config.design)
    facts = make_facts(config, relations)
    return config, relations, facts


def test_popularity_world_sizes_and_validation_splits():
    config, relations, facts = _medium()
    splits = split_facts(facts, config)
    sizes = {name: len(chosen) for name, chosen in splits.items()}
    assert sizes == {"train": 3000, "test_id": 1500, "val": 500, "test_ood": 1500, "val_ood": 500}
    in_domain, out_of_domain = DOMAINS["popularity"]
    assert len(out_of_domain) >= 2
    ids = {name: {fact.id for fact in chosen} for name, chosen in splits.items()}
    names = list(ids)
    for a in names:
        for b in names[names.index(a) + 1 :]:
            assert not ids[a] & ids[b], (a, b)
    assert {f.relation for f in splits["val_ood"] + splits["test_ood"]} == set(out_of_domain)
    # Out-of-domain relations ask about the same people as the training pool.
    pool_people = {f.person for f in splits["train"]}
    assert {f.person for f in splits["test_ood"]} <= pool_people | {f.person for f in facts}
    assert len({f.person for f in splits["test_ood"]} & pool_people) > 900


def test_popularity_drives_exposure_with_a_continuum_and_conflicts():
    config, _, facts = _medium()
    planned = [fact.planned for fact in facts]
    share = lambda low, high: sum(low <= n <= high for n in planned) / len(planned)  # noqa: E731
    assert share(0, 0) > 0.03 and share(3, 29) > 0.3 and share(30, 10**9) > 0.1
    assert max(planned) <= config.max_exposure
    # A person's facts share their popularity: exposure correlates within a person.
    ranked = sorted(facts, key=lambda f: f.popularity)
    low = sum(f.planned for f in ranked[: len(ranked) // 5]) / (len(ranked) // 5)
    high = sum(f.planned for f in ranked[-len(ranked) // 5 :]) / (len(ranked) // 5)
    assert high > 20 * max(low, 0.1)
    conflicts = [f for f in facts if f.wrong_value is not None]
    assert 0.07 < len(conflicts) / len(facts) < 0.13
    assert all(f.wrong_value != f.value for f in conflicts)


def test_popularity_choice_letters_do_not_depend_on_the_person():
    config, relations, facts = _medium()
    datasets = make_datasets(split_facts(facts, config), relations, config.seed)
    items = datasets["choice"]["train"]
    letters = Counter(item.answer for item in items)
    assert min(letters.values()) > 0.2 * len(items)
    by_id = {f.id: f for f in facts}
    for item in items:
        fact = by_id[item.id]
        assert item.choices[item.answer] == fact.value
        if fact.wrong_value is not None:  # the confusable value is one of the options
            assert fact.wrong_value in item.choices.values()
    # No "permutation plus one": many people have two facts at the same letter.
    per_person: dict[str, list[str]] = {}
    for item in items:
        per_person.setdefault(by_id[item.id].person, []).append(item.answer)
    repeats = sum(len(v) != len(set(v)) for v in per_person.values() if len(v) >= 3)
    assert repeats > 0.3 * sum(len(v) >= 3 for v in per_person.values())


def test_conflicting_sightings_show_the_wrong_value():
    config = replace(preset("medium", 0), n_people=60)
    relations = make_relations(random.Random("relations:0"), config.design)
    facts = make_facts(config, relations)
    corpus = make_corpus(config, facts, relations)
    conflicted = [f for f in facts if f.wrong_value is not None and f.planned >= 10]
    assert conflicted
    assert sum(corpus.seen_wrong[f.id] for f in conflicted) > 0
    clean = [f for f in facts if f.wrong_value is None]
    assert all(corpus.seen_wrong[f.id] == 0 for f in clean)
    text = "\n".join(corpus.documents)
    fact = max(conflicted, key=lambda f: corpus.seen_wrong[f.id])
    assert f"{fact.person}" in text and fact.wrong_value in text
