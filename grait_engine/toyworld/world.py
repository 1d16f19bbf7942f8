"""The toy world itself: people, relations, facts, and how often each fact is seen.

Every person has one value for each relation. Each fact (person, relation) gets a frequency
class: ``many`` facts appear many times in the pretraining corpus, ``rare`` ones once or
twice, ``never`` ones not at all, so the pretrained model provably knows some facts and not
others. Pure Python, deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from grait_engine.toyworld.config import ToyWorldConfig

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr", "kl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "or", "el"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)).title()


def _unique_words(rng: random.Random, count: int, syllables: int, taken: set[str]) -> list[str]:
    words: list[str] = []
    while len(words) < count:
        word = _word(rng, syllables)
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


@dataclass(frozen=True)
class Relation:
    """A relation: its name, question, statement templates and possible values."""

    name: str
    question: str  # with {name}
    statements: tuple[str, ...]  # with {name} and {value}
    values: tuple[str, ...]


@dataclass(frozen=True)
class Fact:
    """One fact: ``person`` has ``value`` for ``relation``; ``seen_class`` says how often."""

    id: str
    person: str
    relation: str
    value: str
    seen_class: str  # many | rare | never
    planned: int  # occurrences planned in the corpus (shots add to many facts)


# Option letters of choice questions; every relation has a multiple of four values.
LETTERS = "ABCD"

# Relations asked in the training pool and the in-domain tests; the last one is out-of-domain.
IN_DOMAIN = ("birthplace", "occupation", "employer", "pet")
OUT_OF_DOMAIN = ("instrument",)


def make_relations(rng: random.Random) -> dict[str, Relation]:
    """The five relations, with invented city and company names (no prior knowledge)."""
    taken: set[str] = set()
    cities = tuple(_unique_words(rng, 24, 2, taken))
    companies = tuple(w + " Labs" for w in _unique_words(rng, 20, 2, taken))
    jobs = (
        "baker",
        "pilot",
        "farmer",
        "nurse",
        "painter",
        "lawyer",
        "teacher",
        "miner",
        "tailor",
        "sailor",
        "doctor",
        "singer",
        "potter",
        "judge",
        "clerk",
        "chemist",
    )
    pets = (
        "cat",
        "dog",
        "parrot",
        "rabbit",
        "turtle",
        "hamster",
        "goat",
        "lizard",
        "horse",
        "owl",
        "snake",
        "pony",
    )
    instruments = (
        "piano",
        "violin",
        "flute",
        "drums",
        "harp",
        "cello",
        "trumpet",
        "guitar",
        "banjo",
        "oboe",
        "organ",
        "tuba",
    )
    relations = [
        Relation("birthplace", "Where was {name} born?",
                 ("{name} was born in {value}.", "The birthplace of {name} is {value}."), cities),
        Relation("occupation", "What is the occupation of {name}?",
                 ("{name} works as a {value}.", "By trade, {name} is a {value}."), jobs),
        Relation("employer", "Which company does {name} work for?",
                 ("{name} is employed by {value}.", "The employer of {name} is {value}."),
                 companies),
        Relation("pet", "What pet does {name} have?",
                 ("{name} has a pet {value}.", "The pet of {name} is a {value}."), pets),
        Relation("instrument", "Which instrument does {name} play?",
                 ("{name} plays the {value}.", "The instrument of {name} is the {value}."),
                 instruments),
    ]  # fmt: skip
    return {relation.name: relation for relation in relations}


def letter_of(relation: Relation, value: str) -> str:
    """The letter ``value`` always takes in its relation's choice questions."""
    return LETTERS[relation.values.index(value) % len(LETTERS)]


def make_people(rng: random.Random, count: int) -> list[str]:
    """``count`` invented full names; no first or last name is shared by two people.

    Unique parts let either name token identify the person, which a small model learns far
    faster than a conjunction of two shared tokens.
    """
    taken: set[str] = set()
    firsts = _unique_words(rng, count, 2, taken)
    lasts = _unique_words(rng, count, 2, taken)
    return [f"{first} {last}" for first, last in zip(firsts, lasts, strict=True)]


def make_facts(config: ToyWorldConfig, relations: dict[str, Relation]) -> list[Fact]:
    """One fact per (person, relation), with a value and a frequency class.

    Facts are ordered by person then relation. Ids are ``<relation>_<person index>``.
    """
    rng = random.Random(f"facts:{config.seed}")
    people = make_people(rng, config.n_people)
    facts: list[Fact] = []
    for index, person in enumerate(people):
        # Each person's answers cover every letter (a permutation plus one), so the person
        # alone says nothing about the letter of a question the model has not seen.
        letters = list(LETTERS) + [rng.choice(LETTERS)]
        rng.shuffle(letters)
        for relation, letter in zip(relations.values(), letters, strict=True):
            draw = rng.random()
            if draw < config.p_many:
                seen_class, planned = "many", rng.randint(config.many_min, config.many_max)
            elif draw < config.p_many + config.p_rare:
                seen_class, planned = "rare", rng.randint(1, 2)
            else:
                seen_class, planned = "never", 0
            values = [value for value in relation.values if letter_of(relation, value) == letter]
            facts.append(
                Fact(
                    id=f"{relation.name}_{index:04d}",
                    person=person,
                    relation=relation.name,
                    value=rng.choice(values),
                    seen_class=seen_class,
                    planned=planned,
                )
            )
    return facts
