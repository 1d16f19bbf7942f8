"""Batched greedy decoding of 0-shot prompts (METHOD.md stage 7).

Prompts are tokenised as the probe does (``probe.batching``), grouped by length (longest
first, so an out-of-memory batch size fails at once), left-padded so every row continues from
its last column, and decoded with ``model.generate(do_sample=False)``, which keeps a
key/value cache. A row's output is the decoded new tokens (special tokens dropped) up to the
first newline, stripped. Outputs do not depend on the batch size up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
)

# Called after each batch with the number of prompts decoded so far; may raise to stop.
BatchHook = Callable[[int], None]


def cut_output(text: str) -> str:
    """The first line of a decoded continuation, stripped (the answer ends at a newline)."""
    return text.split("\n", 1)[0].strip()


@torch.inference_mode()
def greedy_batch(
    model: Any,
    tokenizer: Any,
    ids: Sequence[Sequence[int]],
    rows: Sequence[int],
    max_new_tokens: int,
) -> list[str]:
    """Greedy continuations of the prompts ``ids[r]`` for ``r`` in ``rows``, in that order."""
    device = next(model.parameters()).device
    pad = pad_token_id(tokenizer)
    batch = left_pad(ids, rows, pad, device)
    out = model.generate(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=pad,
        num_beams=1,
    )
    new = out[:, batch.input_ids.shape[1] :].tolist()
    return [cut_output(tokenizer.decode(row, skip_special_tokens=True)) for row in new]


def greedy_outputs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    item_ids: Sequence[str],
    max_new_tokens: int,
    batch_size: int | Batching = 16,
    after_batch: BatchHook | None = None,
) -> list[str]:
    """Greedy output of every prompt, in prompt order.

    Inputs: prompt strings with their ``item_ids`` (for the too-long error), the decoding
    budget and batch size; ``after_batch(done)`` runs after every batch (progress, cancel).
    A batch that runs out of memory is retried at half the size (``memory.Batching``).
    Output: one stripped first-line string per prompt. Raises ``PromptTooLongError`` before
    any decoding when a prompt plus ``max_new_tokens`` exceeds the context. Side effect: the
    model is put in eval mode (no dropout in a tuned LoRA).
    """
    model.eval()
    ids = encode_prompts(tokenizer, prompts)
    check_lengths(item_ids, ids, max_new_tokens, context_limit(model, tokenizer))
    outputs: list[str] = [""] * len(prompts)
    done = 0

    def work(rows: list[int]) -> None:
        nonlocal done
        for row, text in zip(
            rows, greedy_batch(model, tokenizer, ids, rows, max_new_tokens), strict=True
        ):
            outputs[row] = text
        done += len(rows)
        if after_batch is not None:
            after_batch(done)

    order = length_order([len(x) for x in ids])
    Batching.of(batch_size, "evaluate").run(order, work)
    return outputs
