"""Training sets of GRAIT and its baselines (METHOD.md, "Baselines"), all with one budget.

Every method turns the probe split (and, for ``grait``, ``selection.json``) into a list of
``(item_id, refuse, weight)`` with at most ``N_ik + N_idk`` entries:

- ``van``: ``N_ik + N_idk`` random pool items with their gold answers (seeded).
- ``cor_rait``: ``N_ik`` random ik items (answers) + ``N_idk`` random idk items (refusals).
- ``corcer_rait``: the ``N_ik`` most certain ik items + the ``N_idk`` least certain idk items
  (certainty ``s_i`` from the probe records; stable order on ties).
- ``grait``: ``selection.json``'s ik items (weight 1) and idk items with their weights.
- ``craft`` (CRaFT): the ``N_ik`` most certain ik items + the ``N_idk`` least certain idk
  items whose correctness fell after rehearsal (the knowledge-flow filter), topped up by
  seeded resampling when a set is short. ``rehearsal_ids`` picks the rehearsal set.

A pool smaller than its budget is taken whole and a note says so. Torch-free.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grait_engine.selection.inputs import PoolSplit

METHODS = ("grait", "cor_rait", "corcer_rait", "craft", "van")
# CRaFT rehearses on items the model is nearly sure of (METHOD.md, "CRaFT").
REHEARSAL_MIN_CORRECTNESS = 0.99
REHEARSAL_LIMIT = 1000
Entry = tuple[str, bool, float]


@dataclass(frozen=True)
class MethodExamples:
    """The training entries ``(item_id, refuse, weight)`` of one method and its notes."""

    method: str
    entries: tuple[Entry, ...]
    notes: tuple[str, ...]

    @property
    def n_ik(self) -> int:
        return sum(1 for _, refuse, _ in self.entries if not refuse)

    @property
    def n_idk(self) -> int:
        return sum(1 for _, refuse, _ in self.entries if refuse)


def _take(pool: Sequence[str], budget: int, name: str, notes: list[str]) -> int:
    """How many of ``pool`` fit ``budget``; notes a pool smaller than its budget."""
    if budget > len(pool):
        notes.append(f"{name}: budget {budget} > pool {len(pool)}; took all {len(pool)}")
        return len(pool)
    return budget


def _sample(
    pool: Sequence[str], budget: int, rng: random.Random, name: str, notes: list[str]
) -> list[str]:
    """A seeded random sample of ``budget`` ids of ``pool`` (the whole pool if smaller)."""
    return rng.sample(list(pool), _take(pool, budget, name, notes))


def van_examples(split: PoolSplit, n_ik: int, n_idk: int, seed: int) -> MethodExamples:
    """``N_ik + N_idk`` random pool items (ik then idk order, seeded), all with answers."""
    notes: list[str] = []
    pool = [*split.ik_ids, *split.idk_ids]
    ids = _sample(pool, n_ik + n_idk, random.Random(seed), "pool", notes)
    return MethodExamples("van", tuple((i, False, 1.0) for i in ids), tuple(notes))


def cor_rait_examples(split: PoolSplit, n_ik: int, n_idk: int, seed: int) -> MethodExamples:
    """``N_ik`` random ik items with answers + ``N_idk`` random idk items with refusals."""
    notes: list[str] = []
    rng = random.Random(seed)
    ik = _sample(split.ik_ids, n_ik, rng, "ik", notes)
    idk = _sample(split.idk_ids, n_idk, rng, "idk", notes)
    entries = [(i, False, 1.0) for i in ik] + [(i, True, 1.0) for i in idk]
    return MethodExamples("cor_rait", tuple(entries), tuple(notes))


def corcer_rait_examples(
    split: PoolSplit, n_ik: int, n_idk: int, certainty: Mapping[str, float]
) -> MethodExamples:
    """The ``N_ik`` most certain ik items + the ``N_idk`` least certain idk items.

    ``certainty``: item id -> ``s_i`` (probe records); sorting is stable, so ties keep
    pool order. Raises KeyError for an id without a certainty.
    """
    notes: list[str] = []
    ik = sorted(split.ik_ids, key=lambda i: -float(certainty[i]))
    idk = sorted(split.idk_ids, key=lambda i: float(certainty[i]))
    ik = ik[: _take(ik, n_ik, "ik", notes)]
    idk = idk[: _take(idk, n_idk, "idk", notes)]
    entries = [(i, False, 1.0) for i in ik] + [(i, True, 1.0) for i in idk]
    return MethodExamples("corcer_rait", tuple(entries), tuple(notes))


def rehearsal_ids(
    correctness: Mapping[str, float],
    certainty: Mapping[str, float],
    tau: float,
    limit: int = REHEARSAL_LIMIT,
) -> tuple[list[str], list[str]]:
    """CRaFT's rehearsal set: items with ``c_i >= 0.99``, most certain first, at most
    ``limit``; returns ``(ids, notes)``.

    When no item reaches 0.99 (a small or unsure model), the ik items (``c_i >= tau``) are
    ranked the same way instead, and a note says so. Ties keep pool order. Raises
    ValueError when not even the ik pool has an item.
    """
    notes: list[str] = []
    sure = [i for i, c in correctness.items() if c >= REHEARSAL_MIN_CORRECTNESS]
    if not sure:
        sure = [i for i, c in correctness.items() if c >= tau]
        notes.append(
            f"rehearsal: no item reached c >= {REHEARSAL_MIN_CORRECTNESS}; rehearsed on the "
            f"most certain ik items (c >= {tau}) instead"
        )
    if not sure:
        raise ValueError("craft: no item is known well enough to rehearse on (empty ik pool)")
    ranked = sorted(sure, key=lambda i: -float(certainty[i]))
    return ranked[:limit], notes


def _top_up(
    chosen: list[str],
    pool: Sequence[str],
    budget: int,
    rng: random.Random,
    name: str,
    notes: list[str],
) -> list[str]:
    """``chosen`` filled up to ``budget`` by seeded resampling from ``pool`` (CRaFT's rule
    for a short set), with a note; unchanged when full or when ``pool`` is empty."""
    missing = budget - len(chosen)
    if missing <= 0 or not pool:
        return chosen
    notes.append(f"{name}: {len(chosen)} < budget {budget}; topped up by resampling {missing}")
    return chosen + [rng.choice(list(pool)) for _ in range(missing)]


def craft_examples(
    split: PoolSplit,
    n_ik: int,
    n_idk: int,
    seed: int,
    certainty: Mapping[str, float],
    flow: Mapping[str, float],
) -> MethodExamples:
    """CRaFT's training set (METHOD.md, "CRaFT", step 4).

    ``flow``: item id -> ``c~_i - c_i`` (correctness after rehearsal minus before). idk
    keeps the items whose correctness fell (``flow < 0``); the ``N_ik`` most certain ik
    items answer, the ``N_idk`` least certain kept idk items refuse. A set shorter than its
    budget is topped up by seeded resampling from itself (a note says so). Raises KeyError
    for an id without a certainty or flow.
    """
    notes: list[str] = []
    rng = random.Random(seed)
    fading = [i for i in split.idk_ids if float(flow[i]) < 0]
    dropped = len(split.idk_ids) - len(fading)
    notes.append(
        f"knowledge flow: kept {len(fading)} idk items whose correctness fell, dropped {dropped}"
    )
    if not fading and split.idk_ids:
        notes.append("knowledge flow: no idk item lost correctness; used the whole idk pool")
        fading = list(split.idk_ids)
    ik = sorted(split.ik_ids, key=lambda i: -float(certainty[i]))[:n_ik]
    idk = sorted(fading, key=lambda i: float(certainty[i]))[:n_idk]
    ik = _top_up(ik, ik, n_ik, rng, "ik", notes)
    idk = _top_up(idk, idk, n_idk, rng, "idk", notes)
    entries = [(i, False, 1.0) for i in ik] + [(i, True, 1.0) for i in idk]
    return MethodExamples("craft", tuple(entries), tuple(notes))


def grait_examples(selection: Mapping[str, Any]) -> MethodExamples:
    """``selection.json``'s items: ik with weight 1, idk with their weights; its notes kept."""
    entries: list[Entry] = []
    for item in selection["items"]:
        if item["role"] == "ik":
            entries.append((item["id"], False, 1.0))
        else:
            entries.append((item["id"], True, float(item["weight"])))
    return MethodExamples("grait", tuple(entries), tuple(selection.get("notes", ())))


def build_examples(
    method: str,
    split: PoolSplit,
    n_ik: int,
    n_idk: int,
    seed: int,
    *,
    certainty: Mapping[str, float] | None = None,
    selection: Mapping[str, Any] | None = None,
    flow: Mapping[str, float] | None = None,
) -> MethodExamples:
    """The training entries of ``method`` (one of ``METHODS``); see the module doc.

    ``certainty`` is required for ``corcer_rait`` and ``craft``, ``flow`` for ``craft`` and
    ``selection`` for ``grait``.
    """
    if method == "van":
        return van_examples(split, n_ik, n_idk, seed)
    if method == "cor_rait":
        return cor_rait_examples(split, n_ik, n_idk, seed)
    if method == "corcer_rait":
        if certainty is None:
            raise ValueError("corcer_rait needs the probe certainties")
        return corcer_rait_examples(split, n_ik, n_idk, certainty)
    if method == "craft":
        if certainty is None or flow is None:
            raise ValueError("craft needs the probe certainties and the knowledge flow")
        return craft_examples(split, n_ik, n_idk, seed, certainty, flow)
    if method == "grait":
        if selection is None:
            raise ValueError("grait needs selection.json")
        return grait_examples(selection)
    raise ValueError(f"unknown method {method!r}; known: {METHODS}")
