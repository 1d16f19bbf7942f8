"""The ``open`` probe: N samples per item from a shared prompt cache (METHOD.md stage 1).

A batch of B prompts is run once (prefill); its key/value cache and last logits are then
repeated N times (rows ``b * N + k``), and the B * N samples are decoded together, one token
per step, each drawn with its own uniforms (``sampling``). Once a quarter of the rows have
stopped (EOS or a newline) they are dropped from the cache, so a few long samples do not make
the whole batch cost as much as they do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.probe.answers import agreement, open_correctness
from grait_engine.probe.batching import Batch
from grait_engine.probe.forward import last_logits
from grait_engine.probe.sampling import pick_tokens
from grait_engine.records.item import Item


@dataclass(frozen=True)
class Decoding:
    """How to decode: ``temperature``, ``max_new_tokens``, ``stop`` ((V,) bool, tokens that
    end a sample, included in its tokens)."""

    temperature: float
    max_new_tokens: int
    stop: torch.Tensor


def open_record(item: Item, samples: Sequence[str]) -> dict[str, Any]:
    """The probe record of one item: ``{"id", "correctness", "certainty", "samples"}``."""
    return {
        "id": item.id,
        "correctness": open_correctness(samples, item.answers),
        "certainty": agreement(samples),
        "samples": list(samples),
    }


@torch.inference_mode()
def sample_batch(
    model: Any, batch: Batch, uniforms: torch.Tensor, n_samples: int, decoding: Decoding
) -> list[list[int]]:
    """Sample ``n_samples`` continuations of every prompt of ``batch``.

    ``uniforms``: (B * N, max_new_tokens), row ``b * N + k`` for sample k of prompt b.
    Output: B * N token lists in that row order, each ending at its stop token or at
    ``max_new_tokens`` tokens.
    """
    logits, cache = last_logits(model, batch.input_ids, batch.attention_mask, batch.position_ids)
    cache.batch_repeat_interleave(n_samples)
    logits = logits.repeat_interleave(n_samples, dim=0)
    mask = batch.attention_mask.repeat_interleave(n_samples, dim=0)
    position = batch.position_ids[:, -1:].repeat_interleave(n_samples, dim=0)
    stop = decoding.stop.to(logits.device)
    active = torch.arange(logits.shape[0], device=logits.device)  # original row of each row
    live = torch.ones_like(active, dtype=torch.bool)  # not stopped yet
    tokens: list[list[int]] = [[] for _ in range(logits.shape[0])]
    for step in range(decoding.max_new_tokens):
        picked = pick_tokens(logits, decoding.temperature, uniforms[active.cpu(), step])
        for row, token, alive in zip(active.tolist(), picked.tolist(), live.tolist(), strict=True):
            if alive:
                tokens[row].append(token)
        live = live & ~stop[picked]
        if step + 1 == decoding.max_new_tokens or not bool(live.any()):
            break
        if 4 * int((~live).sum()) >= len(live):
            # A quarter of the rows have stopped: drop them from the cache and the inputs, so
            # later steps compute live samples only (copying the cache at every single stop
            # would cost more than it saves).
            keep = live.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            active, picked, mask, position = active[keep], picked[keep], mask[keep], position[keep]
            live = live[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        position = position + 1
        logits, cache = last_logits(model, picked.unsqueeze(1), mask, position, cache)
    return tokens
