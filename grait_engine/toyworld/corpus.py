"""The pretraining corpus: every sighting of a fact, rendered as one short document.

Each planned occurrence of a fact becomes a statement ("Ada Vell was born in Torin."), an
open QA prompt or a choice QA prompt in the engine's own prompt format (``prompts.py``),
with the basic or the refuse instruction and sometimes few-shot examples, so both prompt
styles work on the pretrained model.

Each fact's choice question has one fixed set and order of options, the same in the corpus
and in the datasets (as benchmark questions appear verbatim on the web), and its gold
letter follows from the fact's value (``world.letter_of``): knowing a choice item means
knowing the fact; a never-seen item is a guess among four letters.

A small share of refuse-style prompts is answered with the refusal whatever the model
knows: the base model has seen "I don't know." but refusing is not tied to ignorance.

``seen`` counts every time a fact's value actually appears (as a statement, an answer or
the answer of a few-shot example); it is the ground truth written to ``truth.json``. A
conflicting fact (popularity design) shows its ``wrong_value`` instead in a share
``wrong_share`` of its own sightings; those are counted in ``seen_wrong``.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from grait_engine.prompts import Style, build_prompt_text, target_text
from grait_engine.records.item import Item, Task
from grait_engine.toyworld.config import ToyWorldConfig
from grait_engine.toyworld.qa import fixed_choice_item, open_item
from grait_engine.toyworld.world import Fact, Relation, letter_of

# Popularity design: facts planned at least this often may serve as few-shot examples.
SHOT_MIN_PLANNED = 32


@dataclass
class Corpus:
    """The documents (plain text, shuffled) and how often each fact id was seen."""

    documents: list[str]
    seen: Counter[str]
    seen_wrong: Counter[str] = field(default_factory=Counter)


class _Renderer:
    """Renders occurrences; holds the world, the RNG and the exposure counter."""

    def __init__(self, config: ToyWorldConfig, facts: list[Fact], relations: dict[str, Relation]):
        self.config = config
        self.relations = relations
        self.rng = random.Random(f"corpus:{config.seed}")
        self.shot_pool = [
            fact
            for fact in facts
            if fact.seen_class == "many"
            or (
                fact.seen_class == "popularity"
                and fact.planned >= SHOT_MIN_PLANNED
                and fact.wrong_value is None
            )
        ]
        self.seen: Counter[str] = Counter()
        self.seen_wrong: Counter[str] = Counter()

    def sighted_value(self, fact: Fact) -> str:
        """The value this sighting of ``fact`` shows (the wrong one, for a share of a
        conflicting fact's sightings), counted in ``seen`` or ``seen_wrong``."""
        if fact.wrong_value is not None and self.rng.random() < fact.wrong_share:
            self.seen_wrong[fact.id] += 1
            return fact.wrong_value
        self.seen[fact.id] += 1
        return fact.value

    def item(self, fact: Fact, task: Task) -> Item:
        if task == "open":
            return open_item(fact, self.relations)
        return fixed_choice_item(fact, self.relations, self.config.seed)

    def statement(self, fact: Fact) -> str:
        template = self.rng.choice(self.relations[fact.relation].statements)
        return template.format(name=fact.person, value=self.sighted_value(fact))

    def qa(self, fact: Fact, task: Task) -> str:
        config, rng = self.config, self.rng
        style: Style = "refuse" if rng.random() < config.p_refuse_style else "basic"
        shots: list[Item] = []
        if rng.random() < config.p_shots:
            k = rng.randint(1, config.max_shots)
            for shot_fact in rng.sample(self.shot_pool, k):
                if shot_fact.person != fact.person:
                    shots.append(self.item(shot_fact, task))
                    self.seen[shot_fact.id] += 1
        query = self.item(fact, task)
        refuse = style == "refuse" and rng.random() < config.p_refusal_target
        shown = query
        if not refuse:
            value = self.sighted_value(fact)
            if value != fact.value:
                shown = self.with_value(query, fact, value)
        return build_prompt_text(query, style, shots) + target_text(shown, refuse=refuse)

    def with_value(self, query: Item, fact: Fact, value: str) -> Item:
        """``query`` answered with ``value`` (its option letter, for choice items)."""
        if query.task == "open":
            return replace(query, answers=(value,))
        return replace(query, answer=letter_of(self.relations[fact.relation], value))

    def occurrence(self, fact: Fact) -> str:
        draw = self.rng.random()
        if draw < self.config.p_statement:
            return self.statement(fact)
        if draw < self.config.p_statement + self.config.p_open:
            return self.qa(fact, "open")
        return self.qa(fact, "choice")


def make_corpus(
    config: ToyWorldConfig, facts: list[Fact], relations: dict[str, Relation]
) -> Corpus:
    """All planned occurrences of all facts, rendered and shuffled (deterministic per seed)."""
    renderer = _Renderer(config, facts, relations)
    documents = [renderer.occurrence(fact) for fact in facts for _ in range(fact.planned)]
    renderer.rng.shuffle(documents)
    return Corpus(documents=documents, seen=renderer.seen, seen_wrong=renderer.seen_wrong)
