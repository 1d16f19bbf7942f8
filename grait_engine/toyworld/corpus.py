"""The pretraining corpus: every sighting of a fact, rendered as one short document.

Each planned occurrence of a fact becomes a statement ("Ada Vell was born in Torin."), an
open QA prompt or a choice QA prompt in the engine's own prompt format (``prompts.py``),
with the basic or the refuse instruction and sometimes few-shot examples, so both prompt
styles work on the pretrained model. Choice options are re-drawn at every occurrence, so
the model must learn to match what it knows to an option, not a letter by heart.

Matching a recalled value to an option is a skill of its own, so the corpus also has
reading-comprehension documents: a statement about an invented person (never a world
fact) followed by a choice question about it. Choice questions on world facts are put in
the later part of the stream (a simple curriculum), once facts start to be known.

A small share of refuse-style prompts is answered with the refusal whatever the model
knows: the base model has seen "I don't know." but refusing is not tied to ignorance.

``seen`` counts every time a fact's value actually appears (as a statement, an answer or
the answer of a few-shot example); it is the ground truth written to ``truth.json``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from grait_engine.prompts import build_prompt_text, target_text
from grait_engine.records.item import Item, Task
from grait_engine.toyworld.config import ToyWorldConfig
from grait_engine.toyworld.qa import choice_item, open_item
from grait_engine.toyworld.world import Fact, Relation


@dataclass
class Corpus:
    """The documents (plain text, shuffled) and how often each fact id was seen."""

    documents: list[str]
    seen: Counter[str]


class _Renderer:
    """Renders occurrences; holds the world, the RNG and the exposure counter."""

    def __init__(self, config: ToyWorldConfig, facts: list[Fact], relations: dict[str, Relation]):
        self.config = config
        self.relations = relations
        self.rng = random.Random(f"corpus:{config.seed}")
        self.shot_pool = [fact for fact in facts if fact.seen_class == "many"]
        self.seen: Counter[str] = Counter()

    def item(self, fact: Fact, task: Task) -> Item:
        if task == "open":
            return open_item(fact, self.relations)
        return choice_item(fact, self.relations, self.rng)

    def statement(self, fact: Fact) -> str:
        template = self.rng.choice(self.relations[fact.relation].statements)
        self.seen[fact.id] += 1
        return template.format(name=fact.person, value=fact.value)

    def qa(self, fact: Fact, task: Task) -> str:
        config, rng = self.config, self.rng
        style = "refuse" if rng.random() < config.p_refuse_style else "basic"
        shots: list[Item] = []
        if rng.random() < config.p_shots:
            k = rng.randint(1, config.max_shots)
            for shot_fact in rng.sample(self.shot_pool, k):
                if shot_fact.person != fact.person:
                    shots.append(self.item(shot_fact, task))
                    self.seen[shot_fact.id] += 1
        query = self.item(fact, task)
        refuse = style == "refuse" and rng.random() < config.p_refusal_target
        if not refuse:
            self.seen[fact.id] += 1
        return build_prompt_text(query, style, shots) + target_text(query, refuse=refuse)

    def occurrence(self, fact: Fact) -> tuple[float, str]:
        """(position key in [0, 1), document) for one sighting of ``fact``."""
        draw, key = self.rng.random(), self.rng.random()
        if draw < self.config.p_statement:
            return key, self.statement(fact)
        if draw < self.config.p_statement + self.config.p_open:
            return key, self.qa(fact, "open")
        late = self.config.choice_start + (1 - self.config.choice_start) * key
        return late, self.qa(fact, "choice")

    def reading(self, person: str) -> tuple[float, str]:
        """A statement about an invented ``person``, then a choice question answered by it."""
        relation = self.rng.choice(list(self.relations.values()))
        fact = Fact(
            "reading", person, relation.name, self.rng.choice(relation.values), "reading", 0
        )
        context = self.rng.choice(relation.statements).format(name=person, value=fact.value)
        query = choice_item(fact, self.relations, self.rng)
        style = "refuse" if self.rng.random() < self.config.p_refuse_style else "basic"
        prompt = build_prompt_text(query, style)
        return self.rng.random(), f"{context}\n\n{prompt}{target_text(query)}"


def make_corpus(
    config: ToyWorldConfig, facts: list[Fact], relations: dict[str, Relation], strangers: list[str]
) -> Corpus:
    """All planned occurrences of all facts plus reading documents about ``strangers``.

    Documents are ordered by a random key, choice questions on world facts drawn late;
    deterministic per seed.
    """
    renderer = _Renderer(config, facts, relations)
    keyed = [renderer.occurrence(fact) for fact in facts for _ in range(fact.planned)]
    n_reading = round(config.reading_share * len(keyed))
    keyed += [renderer.reading(renderer.rng.choice(strangers)) for _ in range(n_reading)]
    keyed.sort(key=lambda pair: pair[0])
    return Corpus(documents=[document for _, document in keyed], seen=renderer.seen)
