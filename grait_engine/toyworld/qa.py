"""QA items over toy-world facts, and their split into training pool and test sets.

- ``open`` items: the relation's question about the person, answers = [value].
- ``choice`` items: the same question with four options, each value at its own letter
  (``world.letter_of``), three seeded distractors (a conflicting fact's wrong value is one
  of them); answer = the gold value's letter.

Facts of the in-domain relations are split into the training pool (``train``), the
in-domain test set (``test_id``) and, when the config asks for one, a validation split
(``val``); facts of the out-of-domain relations form ``test_ood`` (relations the training
pool never asks about, about the same people) and ``val_ood``. Validation splits are for
choosing recipe knobs; test sets only for the figures reported.
"""

from __future__ import annotations

import random

from grait_engine.records.item import Item, Task
from grait_engine.toyworld.config import ToyWorldConfig
from grait_engine.toyworld.world import DOMAINS, LETTERS, Fact, Relation, letter_of

SPLITS = ("train", "test_id", "test_ood")  # every world; "val", "val_ood" when configured


def open_item(fact: Fact, relations: dict[str, Relation]) -> Item:
    question = relations[fact.relation].question.format(name=fact.person)
    return Item(
        id=fact.id, question=question, answers=(fact.value,), meta={"relation": fact.relation}
    )


def choice_item(fact: Fact, relations: dict[str, Relation], rng: random.Random) -> Item:
    """A four-option item: each option sits at its value's own letter (``letter_of``).

    The gold letter is thus a function of the fact's value: a model unsure of the value is
    unsure of the letter, as a model unsure of an answer is in open QA. Distractors, one per
    other letter, are drawn from ``rng``.
    """
    relation = relations[fact.relation]
    choices: dict[str, str] = {}
    for letter in LETTERS:
        pool = [v for v in relation.values if letter_of(relation, v) == letter and v != fact.value]
        choices[letter] = (
            fact.value if letter == letter_of(relation, fact.value) else rng.choice(pool)
        )
        if fact.wrong_value is not None and letter == letter_of(relation, fact.wrong_value):
            choices[letter] = fact.wrong_value
    question = relation.question.format(name=fact.person)
    return Item(
        id=fact.id,
        question=question,
        choices=choices,
        answer=letter_of(relation, fact.value),
        meta={"relation": fact.relation},
    )


def fixed_choice_item(fact: Fact, relations: dict[str, Relation], seed: int) -> Item:
    """The one choice item of ``fact``: its options depend only on the fact and the seed."""
    return choice_item(fact, relations, random.Random(f"choice:{seed}:{fact.id}"))


def make_item(fact: Fact, task: Task, relations: dict[str, Relation], seed: int) -> Item:
    if task == "open":
        return open_item(fact, relations)
    return fixed_choice_item(fact, relations, seed)


def split_facts(facts: list[Fact], config: ToyWorldConfig) -> dict[str, list[Fact]]:
    """Facts per split (module doc): in-domain facts shuffled into test_id / val / train,
    out-of-domain facts into val_ood / test_ood (validation splits only when configured)."""
    rng = random.Random(f"split:{config.seed}")
    in_domain_names, out_of_domain_names = DOMAINS[config.design]
    in_domain = [fact for fact in facts if fact.relation in in_domain_names]
    rng.shuffle(in_domain)
    n_test = round(len(in_domain) * config.id_test_share)
    n_val = round(len(in_domain) * config.id_val_share)
    ood = [fact for fact in facts if fact.relation in out_of_domain_names]
    n_val_ood = round(len(ood) * config.ood_val_share)
    if n_val_ood:
        rng.shuffle(ood)

    def by_id(chosen: list[Fact]) -> list[Fact]:  # keep files in a readable, stable order
        return sorted(chosen, key=lambda f: f.id)

    splits = {
        "train": by_id(in_domain[n_test + n_val :]),
        "test_id": by_id(in_domain[:n_test]),
        "test_ood": by_id(ood[n_val_ood:]),
    }
    if config.id_val_share > 0 or config.ood_val_share > 0:
        splits["val"] = by_id(in_domain[n_test : n_test + n_val])
        splits["val_ood"] = by_id(ood[:n_val_ood])
    return splits


def make_datasets(
    splits: dict[str, list[Fact]], relations: dict[str, Relation], seed: int
) -> dict[Task, dict[str, list[Item]]]:
    """``{task: {split: items}}`` for both task types (choice options fixed per fact)."""
    return {
        task: {
            name: [make_item(fact, task, relations, seed) for fact in facts]
            for name, facts in splits.items()
        }
        for task in ("open", "choice")
    }
