"""Prompts to token batches: few-shot prompts, the context check, left-padded batches.

Batches are built from prompts sorted by length (longest first), so rows in one batch have
similar lengths and little padding is computed; the longest batch comes first, so a batch
size that does not fit in memory fails at once rather than at the end.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.prompts import build_prompt, pick_shots, token_ids
from grait_engine.records.item import Item

# A tokenizer without a real limit reports a huge sentinel (int(1e30)) as model_max_length.
_SANE_LIMIT = 10**7


class PromptTooLongError(ValueError):
    """Prompts that do not fit the model's context; nothing was computed.

    ``offenders``: ``(item id, tokens needed)`` for every offending item, in pool order;
    ``limit``: the context length in tokens. Prompts are never truncated silently: a cut
    prompt would probe a different question.
    """

    def __init__(self, offenders: Sequence[tuple[str, int]], limit: int) -> None:
        self.offenders = tuple(offenders)
        self.limit = limit
        shown = ", ".join(f"{i} ({n} tokens)" for i, n in self.offenders[:20])
        more = f" and {len(self.offenders) - 20} more" if len(self.offenders) > 20 else ""
        super().__init__(
            f"{len(self.offenders)} prompt(s) exceed the model context of {limit} tokens "
            f"(prompt plus new tokens): {shown}{more}. Use fewer shots or shorter items."
        )


@dataclass(frozen=True)
class Batch:
    """Left-padded model inputs for ``rows`` (indices into the encoded prompts).

    ``input_ids``, ``attention_mask``, ``position_ids``: (B, L) long tensors; a row's real
    tokens are at its end and its positions count 0.. from its first real token.
    """

    rows: tuple[int, ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor


def shot_index(pool: Sequence[Item]) -> tuple[list[Item], dict[str, list[Item]]]:
    """The shot pool as a list and grouped by subject (for :func:`choose_shots`)."""
    by_subject: dict[str, list[Item]] = defaultdict(list)
    for item in pool:
        if item.subject:
            by_subject[item.subject].append(item)
    return list(pool), dict(by_subject)


def choose_shots(
    query: Item, index: tuple[list[Item], dict[str, list[Item]]], k: int, seed: int
) -> list[Item]:
    """``k`` shots for ``query`` with ``prompts.pick_shots``'s rules, in O(k) per query.

    ``pick_shots`` shuffles its whole pool, which is quadratic over a large pool probed
    against itself; here a seeded sample of ``k + 1`` same-subject and ``k + 1`` other
    candidates (one more than needed, in case the query is among them) is handed to it.
    Deterministic for ``seed`` and the query id, independent of batching and sharding.
    """
    if k <= 0:
        return []
    everything, by_subject = index
    rng = random.Random(f"probe-shots:{seed}:{query.id}")
    candidates: list[Item] = []
    if query.subject and query.subject in by_subject:
        group = by_subject[query.subject]
        candidates += rng.sample(group, min(k + 1, len(group)))
    candidates += rng.sample(everything, min(k + 1, len(everything)))
    unique = list({item.id: item for item in candidates}.values())
    return pick_shots(query, unique, k, seed)


def probe_prompts(
    items: Sequence[Item],
    shot_pool: Sequence[Item],
    k: int,
    style: Any,
    seed: int,
    tokenizer: Any,
) -> list[str]:
    """The few-shot prompt of every item (``prompts.build_prompt``), in item order."""
    index = shot_index(shot_pool)
    return [
        build_prompt(item, style, choose_shots(item, index, k, seed), tokenizer) for item in items
    ]


def encode_prompts(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each prompt (``prompts.token_ids``: BOS unless a chat template wrote it)."""
    return token_ids(tokenizer, prompts)


def context_limit(model: Any, tokenizer: Any) -> int | None:
    """The context length: the smaller of ``max_position_embeddings`` and the tokenizer's
    ``model_max_length`` (when that is a real value), or None when neither is known."""
    limits = []
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < _SANE_LIMIT:
        limits.append(declared)
    return min(limits) if limits else None


def check_lengths(
    item_ids: Sequence[str], encoded: Sequence[Sequence[int]], extra: int, limit: int | None
) -> None:
    """Raise :class:`PromptTooLongError` naming every item whose prompt plus ``extra`` new
    tokens exceeds ``limit`` (no check when ``limit`` is None)."""
    if limit is None:
        return
    offenders = [
        (item_id, len(ids) + extra)
        for item_id, ids in zip(item_ids, encoded, strict=True)
        if len(ids) + extra > limit
    ]
    if offenders:
        raise PromptTooLongError(offenders, limit)


def length_order(lengths: Sequence[int]) -> list[int]:
    """Row indices longest first, ties by index: the order batches are cut from
    (``memory.Batching``), so rows in one batch have similar lengths and a batch size that
    does not fit fails on the first batch."""
    return sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))


def left_pad(
    encoded: Sequence[Sequence[int]], rows: Sequence[int], pad_id: int, device: torch.device
) -> Batch:
    """Left-pad the prompts ``encoded[r]`` for ``r`` in ``rows`` into a :class:`Batch`."""
    width = max(len(encoded[r]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids = encoded[r]
        input_ids[b, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[b, width - len(ids) :] = 1
    # Positions count from each row's first real token, as in an unpadded forward pass;
    # pad positions get 0 (they are masked out anyway).
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return Batch(
        tuple(rows), input_ids.to(device), attention_mask.to(device), position_ids.to(device)
    )


def pad_token_id(tokenizer: Any) -> int:
    """The id used for padding (masked out, so any token works): pad, else EOS, else 0."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0
