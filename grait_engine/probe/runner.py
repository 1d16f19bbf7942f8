"""The batched probe in memory: prompts -> context check -> batches -> per-item records.

``prepare`` does everything that can fail on bad input before any model work (mixed task
types, duplicate ids, prompts longer than the context, indistinct option letters);
``probe_items`` then computes records for any subset of the prepared items (the stage calls
it shard by shard).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.memory import Batching
from grait_engine.probe.batching import (
    check_lengths,
    context_limit,
    encode_prompts,
    left_pad,
    length_order,
    pad_token_id,
    probe_prompts,
)
from grait_engine.probe.choice import choice_batch, letter_token_ids
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.open import Decoding, open_record, sample_batch
from grait_engine.probe.sampling import (
    eos_token_ids,
    sample_text,
    sample_uniforms,
    stop_token_mask,
)
from grait_engine.records.item import Item, Task

# Called after each batch with the number of items it held; may raise to stop.
BatchHook = Callable[[int], None]


class ProbeInputError(ValueError):
    """Items the probe cannot run on (empty, mixed task types, duplicate ids)."""


@dataclass(frozen=True)
class Prepared:
    """Everything the probe needs besides the model, computed once for the whole pool.

    ``encoded[i]``: the prompt tokens of ``items[i]``; ``letter_ids`` (choice) or
    ``decoding`` and ``eos_ids`` (open); ``pad_id`` fills left padding.
    """

    task: Task
    items: tuple[Item, ...]
    encoded: tuple[tuple[int, ...], ...]
    pad_id: int
    letter_ids: dict[str, int] | None = None
    decoding: Decoding | None = None
    eos_ids: tuple[int, ...] = ()


def pool_task(items: Sequence[Item]) -> Task:
    """The one task type of ``items``; ProbeInputError if empty, mixed or ids repeat."""
    if not items:
        raise ProbeInputError("no items to probe")
    tasks = {item.task for item in items}
    if len(tasks) > 1:
        raise ProbeInputError(f"items mix task types {sorted(tasks)}: probe each task separately")
    if len({item.id for item in items}) != len(items):
        raise ProbeInputError("duplicate item ids")
    return items[0].task


def prepare(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    config: ProbeConfig,
    shots: Sequence[Item] | None,
    seed: int,
) -> Prepared:
    """Build and tokenize every prompt, check them against the context, resolve tokens.

    ``shots``: the pool few-shot examples come from (a dev split); None uses ``items``
    themselves (never an item as its own shot). Raises ProbeInputError,
    ``PromptTooLongError`` (every offending id), ``LetterTokenError``.
    """
    task = pool_task(items)
    pool = [s for s in (items if shots is None else shots) if s.task == task]
    prompts = probe_prompts(items, pool, config.shots_for(task), config.style, seed, tokenizer)
    encoded = [tuple(ids) for ids in encode_prompts(tokenizer, prompts)]
    pad_id = pad_token_id(tokenizer)
    limit = context_limit(model, tokenizer)
    ids = [item.id for item in items]
    if task == "choice":
        letters = letter_token_ids(tokenizer, {k for item in items for k in item.choices or {}})
        # Tokens every option starts with (a lone space) are part of what is read after.
        encoded = [e + letters.prefix for e in encoded]
        check_lengths(ids, encoded, 0, limit)
        return Prepared(task, tuple(items), tuple(encoded), pad_id, letter_ids=letters.ids)
    check_lengths(ids, encoded, config.max_new_tokens, limit)
    eos = eos_token_ids(model, tokenizer)
    vocab = model.get_output_embeddings().weight.shape[0]
    decoding = Decoding(
        config.temperature, config.max_new_tokens, stop_token_mask(tokenizer, vocab, eos)
    )
    return Prepared(
        task, tuple(items), tuple(encoded), pad_id, decoding=decoding, eos_ids=tuple(eos)
    )


def probe_items(
    model: Any,
    tokenizer: Any,
    prepared: Prepared,
    indices: Sequence[int],
    config: ProbeConfig,
    seed: int,
    batch_size: int | Batching,
    on_batch: BatchHook | None = None,
    before_batch: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Records of ``prepared.items[i]`` for ``i`` in ``indices``, in that order.

    Batches of ``batch_size`` prompts, longest first; ``before_batch`` runs before each
    (a cancel check: raising there loses no finished work), ``on_batch`` after each. A batch
    that runs out of memory is retried at half the size (``memory.Batching``; the records
    of an item do not depend on its batch). For ``open`` a batch decodes
    ``batch_size * n_samples`` rows at once.
    """
    if model.training:
        raise ValueError("the probe needs the model in eval mode (dropout would randomise it)")
    device = next(model.parameters()).device
    encoded = [prepared.encoded[i] for i in indices]
    records: list[dict[str, Any] | None] = [None] * len(indices)

    def work(rows: list[int]) -> None:
        if before_batch is not None:
            before_batch()
        batch = left_pad(encoded, rows, prepared.pad_id, device)
        items = [prepared.items[indices[r]] for r in rows]
        if prepared.task == "choice":
            assert prepared.letter_ids is not None
            done = choice_batch(model, batch, items, prepared.letter_ids)
        else:
            done = _open_batch(model, tokenizer, prepared, batch, items, config, seed)
        for r, record in zip(rows, done, strict=True):
            records[r] = record
        if on_batch is not None:
            on_batch(len(rows))

    order = length_order([len(e) for e in encoded])
    Batching.of(batch_size, "probe").run(order, work)
    return [r for r in records if r is not None]


def _open_batch(
    model: Any,
    tokenizer: Any,
    prepared: Prepared,
    batch: Any,
    items: Sequence[Item],
    config: ProbeConfig,
    seed: int,
) -> list[dict[str, Any]]:
    """Sample every item of one batch and score the samples."""
    assert prepared.decoding is not None
    n = config.n_samples
    uniforms = torch.cat(
        [sample_uniforms(seed, item.id, n, config.max_new_tokens) for item in items]
    )
    tokens = sample_batch(model, batch, uniforms, n, prepared.decoding)
    records = []
    for b, item in enumerate(items):
        texts = [sample_text(tokenizer, t, prepared.eos_ids) for t in tokens[b * n : (b + 1) * n]]
        records.append(open_record(item, texts))
    return records
