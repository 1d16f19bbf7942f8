"""The toy world itself: people, relations, facts, and how often each fact is seen.

Every person has one value for each relation of the world's design. Two designs:

- ``classes`` (sizes ``tiny`` and ``small``): each fact (person, relation) gets a frequency
  class: ``many`` facts appear many times in the pretraining corpus, ``rare`` ones once or
  twice, ``never`` ones not at all, so the pretrained model provably knows some facts and
  not others.
- ``popularity`` (size ``medium``): knowledge shaped like a real model's. Each person has a
  popularity drawn from a heavy-tailed (log-normal) law, and every fact about that person
  is seen about that often, with per-fact noise: exposure is a continuum (0, 1, 2, 4, 8...
  sightings), so there is partial knowledge, and familiarity is a property of the person
  that refusal can generalise from (PopQA, Mallen et al. 2023). About ``p_conflict`` of the
  facts are also seen with one fixed wrong value part of the time (honest confusion).
  Values are drawn independently per fact, so a choice item's gold letter says nothing
  about the person.

Pure Python, deterministic for a seed.
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
    seen_class: str  # many | rare | never | popularity (the popularity design)
    planned: int  # occurrences planned in the corpus (shots add to many facts)
    popularity: float = 0.0  # the person's mean exposure (popularity design)
    wrong_value: str | None = None  # the conflicting value some sightings carry
    wrong_share: float = 0.0  # share of the planned sightings that carry ``wrong_value``


# Option letters of choice questions; every relation has a multiple of four values.
LETTERS = "ABCD"

# Relations asked in the training pool and the in-domain tests, and the out-of-domain ones
# (about the same people), per design.
IN_DOMAIN = ("birthplace", "occupation", "employer", "pet")
OUT_OF_DOMAIN = ("instrument",)
DOMAINS = {
    "classes": (IN_DOMAIN, OUT_OF_DOMAIN),
    "popularity": (
        ("birthplace", "occupation", "employer", "pet", "school"),
        ("instrument", "sport"),
    ),
}


def design_relations(design: str) -> tuple[str, ...]:
    """The relation names of a design, in-domain first."""
    in_domain, out_of_domain = DOMAINS[design]
    return (*in_domain, *out_of_domain)


def make_relations(rng: random.Random, design: str = "classes") -> dict[str, Relation]:
    """The relations of ``design``, with invented city, company and school names.

    Words are drawn in a fixed order, so the ``classes`` relations do not depend on the
    relations only the ``popularity`` design uses.
    """
    taken: set[str] = set()
    cities = tuple(_unique_words(rng, 24, 2, taken))
    companies = tuple(w + " Labs" for w in _unique_words(rng, 20, 2, taken))
    jobs = tuple(
        """baker pilot farmer nurse painter lawyer teacher miner tailor sailor doctor singer
        potter judge clerk chemist""".split()
    )
    pets = tuple("cat dog parrot rabbit turtle hamster goat lizard horse owl snake pony".split())
    instruments = tuple(
        "piano violin flute drums harp cello trumpet guitar banjo oboe organ tuba".split()
    )
    relations = [
        Relation(
            "birthplace",
            "Where was {name} born?",
            ("{name} was born in {value}.", "The birthplace of {name} is {value}."),
            cities,
        ),
        Relation(
            "occupation",
            "What is the occupation of {name}?",
            ("{name} works as a {value}.", "By trade, {name} is a {value}."),
            jobs,
        ),
        Relation(
            "employer",
            "Which company does {name} work for?",
            ("{name} is employed by {value}.", "The employer of {name} is {value}."),
            companies,
        ),
        Relation(
            "pet",
            "What pet does {name} have?",
            ("{name} has a pet {value}.", "The pet of {name} is a {value}."),
            pets,
        ),
        Relation(
            "instrument",
            "Which instrument does {name} play?",
            ("{name} plays the {value}.", "The instrument of {name} is the {value}."),
            instruments,
        ),
    ]
    schools = tuple(w + " Academy" for w in _unique_words(rng, 16, 2, taken))
    sports = tuple(
        "tennis rowing chess boxing skiing fencing hockey archery cycling judo golf karate".split()
    )
    relations += [
        Relation(
            "school",
            "Which school did {name} attend?",
            ("{name} went to {value}.", "The school of {name} was {value}."),
            schools,
        ),
        Relation(
            "sport",
            "Which sport does {name} practise?",
            ("{name} practises {value}.", "The sport of {name} is {value}."),
            sports,
        ),
    ]
    by_name = {relation.name: relation for relation in relations}
    return {name: by_name[name] for name in design_relations(design)}


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
    """One fact per (person, relation), with a value and how often it is seen.

    Facts are ordered by person then relation. Ids are ``<relation>_<person index>``.
    """
    if config.design == "popularity":
        return make_popularity_facts(config, relations)
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


def _exposure(rng: random.Random, mean: float, cap: int) -> int:
    """A count near ``mean`` by stochastic rounding (0 <= count <= cap)."""
    return min(cap, int(mean + rng.random()))


def make_popularity_facts(config: ToyWorldConfig, relations: dict[str, Relation]) -> list[Fact]:
    """Facts of the ``popularity`` design (module doc).

    A person's popularity ``mu`` (mean sightings per fact) has ``log2 mu ~ N(pop_log2_mean,
    pop_log2_sd)``; each of their facts is planned ``mu * 2^N(0, fact_log2_sd)`` times
    (stochastically rounded, at most ``max_exposure``). With probability ``p_conflict`` a
    fact also has a fixed wrong value, carried by a share of its sightings drawn uniformly
    from ``conflict_share_range``. Values are uniform over the relation's values.
    """
    rng = random.Random(f"facts:{config.seed}")
    people = make_people(rng, config.n_people)
    facts: list[Fact] = []
    for index, person in enumerate(people):
        popularity = 2.0 ** rng.gauss(config.pop_log2_mean, config.pop_log2_sd)
        for relation in relations.values():
            value = rng.choice(relation.values)
            planned = _exposure(
                rng, popularity * 2.0 ** rng.gauss(0.0, config.fact_log2_sd), config.max_exposure
            )
            wrong_value, wrong_share = None, 0.0
            if rng.random() < config.p_conflict:
                # A value at another letter, so a choice item can offer both.
                letter = letter_of(relation, value)
                wrong_value = rng.choice(
                    [v for v in relation.values if letter_of(relation, v) != letter]
                )
                wrong_share = rng.uniform(*config.conflict_share_range)
            facts.append(
                Fact(
                    id=f"{relation.name}_{index:04d}",
                    person=person,
                    relation=relation.name,
                    value=value,
                    seen_class="popularity",
                    planned=planned,
                    popularity=round(popularity, 3),
                    wrong_value=wrong_value,
                    wrong_share=round(wrong_share, 3),
                )
            )
    return facts
