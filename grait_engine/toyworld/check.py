"""What the toy model knows: the truth of every fact, and quick checks per frequency class.

``measure_known`` decides the truth (``known``) from the greedy answer and the probability
the model gives each fact's value. The rest is mostly not the engine's probe (that is
stage 1, with sampling): the build's own acceptance check is 0-shot greedy decoding with
both prompt styles, written to ``stats.json`` so the figures of the README can be
reproduced. ``probe_auroc`` then runs stage 1 itself on the pool, to record how well it
ranks known facts above unknown ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from grait_engine.features.sequences import Encoded, collate, per_sample_loss
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.metrics import auroc
from grait_engine.probe.runner import prepare, probe_items
from grait_engine.prompts import REFUSAL, Style, build_prompt, target_text, token_ids
from grait_engine.records.item import Item
from grait_engine.split.stage import DEFAULT_TAU


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


@torch.no_grad()
def greedy_answers(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 64
) -> list[str]:
    """Greedy continuations of ``prompts`` (left-padded batches), cut at the first newline."""
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            list(prompts[start : start + batch_size]), return_tensors="pt", padding=True
        )
        generated = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True):
            outputs.append(text.split("\n")[0].strip())
    return outputs


def grade(item: Item, output: str) -> str:
    """``refused``, ``correct``, ``wrong`` or ``unparsed`` (choice output without a letter)."""
    text = _normalise(output)
    if _normalise(REFUSAL).rstrip(".") in text:
        return "refused"
    if item.task == "choice":
        letter = output.strip()[:1]
        if not item.choices or letter not in item.choices:
            return "unparsed"
        return "correct" if letter == item.answer else "wrong"
    if not text:
        return "unparsed"
    return "correct" if any(_normalise(a) in text for a in item.answers) else "wrong"


def check_knowledge(
    model: Any, tokenizer: Any, items: Sequence[Item], seen_class: dict[str, str], style: Style
) -> dict[str, dict[str, float]]:
    """Greedy 0-shot grades per frequency class: ``{class: {n, correct, wrong, refused, unparsed}}``.

    Rates are fractions of the class's items.
    """
    prompts = [build_prompt(item, style, tokenizer=tokenizer) for item in items]
    max_new = 2 if items and items[0].task == "choice" else 12
    outputs = greedy_answers(model, tokenizer, prompts, max_new)
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item, output in zip(items, outputs, strict=True):
        for group in (seen_class[item.id], "all"):
            counts[group]["n"] += 1
            counts[group][grade(item, output)] += 1
    return {
        group: {
            key: (value if key == "n" else round(value / c["n"], 4)) for key, value in c.items()
        }
        for group, c in counts.items()
    }


@torch.no_grad()
def value_probabilities(
    model: Any, tokenizer: Any, items: Sequence[Item], batch_size: int = 64
) -> list[float]:
    """p(value | 0-shot basic prompt) of each open item: the probability of its gold
    answer's tokens (``target_text``) right after the prompt, teacher-forced.

    Output: one float in [0, 1] per item, in order. One forward pass per batch.
    """
    sequences = []
    for item in items:
        prompt = build_prompt(item, "basic", tokenizer=tokenizer)
        prompt_ids, full_ids = token_ids(tokenizer, [prompt, prompt + target_text(item)])
        sequences.append(Encoded(tuple(full_ids), len(prompt_ids)))
    device = next(model.parameters()).device
    probabilities: list[float] = []
    for start in range(0, len(sequences), batch_size):
        batch = collate(sequences[start : start + batch_size], tokenizer.pad_token_id, device)
        probabilities.extend(torch.exp(-per_sample_loss(model, batch, "sum")).tolist())
    return probabilities


# A value the model gives more often than not (p >= 1/2) is not a guess.
MAJORITY = 0.5


@dataclass(frozen=True)
class Truth:
    """What the pretrained model holds, per fact (open item) id: ``known`` (the truth),
    ``p_value`` (the probability it gives the value) and ``greedy_right`` (its greedy answer
    is right, lucky guesses included)."""

    known: dict[str, bool]
    p_value: dict[str, float]
    greedy_right: dict[str, bool]


def measure_known(model: Any, tokenizer: Any, items: Sequence[Item], seen: dict[str, int]) -> Truth:
    """Which facts the pretrained model holds (:class:`Truth`).

    ``items`` are the open items of the facts (``meta.relation`` set); ``seen`` counts each
    fact's sightings. A fact is *known* when it was seen at least once and the model, asked
    its open question 0-shot with the basic prompt,

    - greedily answers with its value, and
    - either gives that value at least ``MAJORITY`` of its probability
      (``value_probabilities``), or more than it ever gives the same value for a person it
      has never seen with that relation (the value's *luck ceiling*, ``luck_ceilings``).

    The second condition is what keeps lucky guesses out: a fact seen once or twice is
    answered greedily right about as often as a never-seen one (5-6% of them on the medium
    world), but with no more probability than a guess. The ceiling is per value because a
    model may bet heavily on one value of a relation whoever is asked about; the majority
    clause because it may even hallucinate a value with near certainty for one never-seen
    person (on the small world that ceiling alone rejected 17% of the facts seen 64+ times,
    nearly all answered with p >= 0.5). A fact's choice item shares its id and its truth, so
    a lucky guess among four letters is not knowledge either.
    """
    prompts = [build_prompt(item, "basic", tokenizer=tokenizer) for item in items]
    outputs = greedy_answers(model, tokenizer, prompts, 12)
    probabilities = dict(
        zip([item.id for item in items], value_probabilities(model, tokenizer, items), strict=True)
    )
    ceilings = luck_ceilings(model, tokenizer, items, seen)
    right = {
        item.id: grade(item, out) == "correct" for item, out in zip(items, outputs, strict=True)
    }
    known = {
        item.id: seen.get(item.id, 0) > 0
        and right[item.id]
        and (
            probabilities[item.id] >= MAJORITY
            or probabilities[item.id] > ceilings.get((_relation(item), item.answers[0]), 0.0)
        )
        for item in items
    }
    return Truth(known, probabilities, right)


def luck_ceilings(
    model: Any, tokenizer: Any, items: Sequence[Item], seen: dict[str, int]
) -> dict[tuple[str, str], float]:
    """``{(relation, value): ceiling}``: the highest probability the model gives ``value``
    when asked the relation's open question about a person never seen with it, over the
    never-seen facts among ``items``. A relation's values are the gold answers its items
    have. Relations without a never-seen fact are absent (no ceiling).

    Cost: one teacher-forced sequence per never-seen fact and value of its relation.
    """
    values: dict[str, set[str]] = defaultdict(set)
    for item in items:
        values[_relation(item)].add(item.answers[0])
    candidates = [
        replace(item, answers=(value,))
        for item in items
        if seen.get(item.id, 0) == 0
        for value in sorted(values[_relation(item)])
    ]
    ceilings: dict[tuple[str, str], float] = {}
    for item, p in zip(candidates, value_probabilities(model, tokenizer, candidates), strict=True):
        key = (_relation(item), item.answers[0])
        ceilings[key] = max(ceilings.get(key, 0.0), p)
    return ceilings


def _relation(item: Item) -> str:
    return str((item.meta or {}).get("relation", ""))


# Exposure bins of the knowledge curve in stats.json: (label, lowest, highest) sightings.
EXPOSURE_BINS = (
    ("0", 0, 0),
    ("1-2", 1, 2),
    ("3-7", 3, 7),
    ("8-15", 8, 15),
    ("16-29", 16, 29),
    ("30-63", 30, 63),
    ("64+", 64, 10**9),
)


def knowledge_curves(
    truth: Truth, seen: dict[str, int], popularity: dict[str, float]
) -> dict[str, dict[str, dict[str, float]]]:
    """Share of facts known per exposure bin and per popularity quintile of the people.

    Output: ``{"by_exposure": {bin: {n, known, greedy_right}}, "by_popularity":
    {"q1".."q5": {n, known, popularity_min}}}`` with fractions (q1 = least popular fifth).
    ``greedy_right`` counts lucky guesses too: its value in bin "0" is the guess rate.
    """
    known = truth.known
    by_exposure: dict[str, dict[str, float]] = {}
    for label, low, high in EXPOSURE_BINS:
        ids = [i for i in known if low <= seen.get(i, 0) <= high]
        if ids:
            by_exposure[label] = {
                "n": len(ids),
                "known": round(_share(known, ids), 4),
                "greedy_right": round(_share(truth.greedy_right, ids), 4),
            }
    ranked = sorted(known, key=lambda i: (popularity.get(i, 0.0), i))
    by_popularity: dict[str, dict[str, float]] = {}
    for q in range(5):
        ids = ranked[q * len(ranked) // 5 : (q + 1) * len(ranked) // 5]
        if ids:
            by_popularity[f"q{q + 1}"] = {
                "n": len(ids),
                "known": round(_share(known, ids), 4),
                "popularity_min": popularity.get(ids[0], 0.0),
            }
    return {"by_exposure": by_exposure, "by_popularity": by_popularity}


def _share(known: dict[str, bool], ids: Sequence[str]) -> float:
    return sum(known[i] for i in ids) / len(ids)


def probe_auroc(
    model: Any, tokenizer: Any, items: Sequence[Item], known: dict[str, bool], seed: int = 0
) -> dict[str, float | int | None]:
    """How well the engine's knowledge probe (stage 1, METHOD.md defaults, 0-shot as a job
    without a shots dataset) ranks known above unknown ``items``.

    Output: ``{"auroc": AUROC of the correctness c against ``known`` (None when one side
    is empty), "n_known", "n_unknown", "idk_known": share of known items with c below the
    split's default tau, i.e. what a job's split would label idk}``. Choice items cost one
    forward pass each; open items ``n_samples`` sampled answers (one prefill shared).
    """
    config = ProbeConfig()
    prepared = prepare(model, tokenizer, items, config, [], seed)
    records = probe_items(model, tokenizer, prepared, range(len(items)), config, seed, 64)
    labels = [known[item.id] for item in items]
    correctness = [record["correctness"] for record in records]
    n_known = sum(labels)
    both_sides = 0 < n_known < len(labels)
    idk_known = sum(c < DEFAULT_TAU for c, k in zip(correctness, labels, strict=True) if k)
    return {
        "auroc": round(auroc(correctness, labels), 4) if both_sides else None,
        "n_known": n_known,
        "n_unknown": len(labels) - n_known,
        "idk_known": round(idk_known / n_known, 4) if n_known else None,
    }
