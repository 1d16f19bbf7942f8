"""QA items over toy-world facts, and their split into training pool and test sets.

- ``open`` items: the relation's question about the person, answers = [value].
- ``choice`` items: the same question with four options, each value at its own letter
  (``world.letter_of``), three seeded distractors; answer = the gold value's letter.

Facts of the in-domain relations are split into the training pool (``train``) and the
in-domain test set (``test_id``); facts of the out-of-domain relation form ``test_ood``
(a relation the training pool never asks about).
"""

from __future__ import annotations

import random

from grait_engine.records.item import Item, Task
from grait_engine.toyworld.world import IN_DOMAIN, LETTERS, OUT_OF_DOMAIN, Fact, Relation, letter_of

SPLITS = ("train", "test_id", "test_ood")


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


def split_facts(facts: list[Fact], id_test_share: float, seed: int) -> dict[str, list[Fact]]:
    """Facts per split: in-domain facts shuffled into train/test_id, OOD facts to test_ood."""
    rng = random.Random(f"split:{seed}")
    in_domain = [fact for fact in facts if fact.relation in IN_DOMAIN]
    rng.shuffle(in_domain)
    n_test = round(len(in_domain) * id_test_share)
    ood = [fact for fact in facts if fact.relation in OUT_OF_DOMAIN]
    by_id = sorted  # keep files in a readable, stable order
    return {
        "train": by_id(in_domain[n_test:], key=lambda f: f.id),
        "test_id": by_id(in_domain[:n_test], key=lambda f: f.id),
        "test_ood": by_id(ood, key=lambda f: f.id),
    }


def make_datasets(
    splits: dict[str, list[Fact]], relations: dict[str, Relation], seed: int
) -> dict[Task, dict[str, list[Item]]]:
    """``{task: {split: items}}`` for both task types (choice options fixed per fact)."""
    return {
        task: {
            name: [make_item(fact, task, relations, seed) for fact in splits[name]]
            for name in SPLITS
        }
        for task in ("open", "choice")
    }
