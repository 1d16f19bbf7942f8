"""Training sequences for gradients: tokenised prompt + target, right-padded batches.

A sequence for item ``x`` and target ``y`` is ``build_prompt(x, "refuse", shots=())`` followed
by ``target_text(x, refuse=...)``: the 0-shot refuse prompt, the format of the final training
(METHOD.md stage 3.2). The prompt and the full text are tokenised separately (both with the
tokenizer's special tokens, e.g. ``<s>``) and the first ``len(prompt_ids)`` positions are
masked, so ``l(x, y)`` is the NLL of the target tokens only (by default their mean; see
``knobs.TARGET_LOSSES`` for the other reductions). No EOS is appended.

Batches are right-padded (unlike the probe's left padding): positions are then the same as
in an unpadded sequence, and padding only ever sits after the last real token, where the
causal mask keeps it from influencing anything and the loss mask gives it zero gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.knobs import TARGET_LOSSES
from grait_engine.logits import logits_at
from grait_engine.prompts import build_prompt, target_text, token_ids
from grait_engine.records.item import Item


@dataclass(frozen=True)
class Encoded:
    """One training sequence: ``ids`` (token ids) of which the first ``n_prompt`` are prompt."""

    ids: tuple[int, ...]
    n_prompt: int

    @property
    def n_target(self) -> int:
        return len(self.ids) - self.n_prompt


@dataclass(frozen=True)
class Batch:
    """Right-padded tensors for ``b`` sequences of up to ``t`` tokens.

    ``input_ids``, ``attention_mask`` (b, t) int64; ``target_mask`` (b, t - 1) float32, 1 where
    position ``k + 1`` is a target token (aligned with the logits at ``k``).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    target_mask: torch.Tensor

    @property
    def n_tokens(self) -> int:
        return int(self.attention_mask.sum())


class EmptyTargetError(ValueError):
    """A target that tokenises to nothing (its loss would be undefined)."""


def encode(item: Item, refuse: bool, tokenizer: Any) -> Encoded:
    """Tokenise ``item``'s 0-shot refuse prompt plus its gold (or refusal) target."""
    prompt = build_prompt(item, "refuse", (), tokenizer)
    full = prompt + target_text(item, refuse=refuse)
    prompt_ids, full_ids = token_ids(tokenizer, [prompt, full])
    if len(full_ids) <= len(prompt_ids):
        raise EmptyTargetError(f"item {item.id!r}: the target adds no tokens")
    return Encoded(tuple(full_ids), len(prompt_ids))


def encode_pair(item: Item, tokenizer: Any) -> tuple[Encoded, Encoded]:
    """(gold-answer sequence, refusal sequence) of ``item``."""
    return encode(item, False, tokenizer), encode(item, True, tokenizer)


def collate(sequences: Sequence[Encoded], pad_id: int, device: torch.device) -> Batch:
    """Right-pad ``sequences`` into a :class:`Batch` on ``device``."""
    t = max(len(s.ids) for s in sequences)
    ids = torch.full((len(sequences), t), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), t), dtype=torch.long)
    target = torch.zeros((len(sequences), t - 1), dtype=torch.float32)
    for row, seq in enumerate(sequences):
        n = len(seq.ids)
        ids[row, :n] = torch.tensor(seq.ids, dtype=torch.long)
        attention[row, :n] = 1
        # logits at k predict token k + 1: target tokens n_prompt .. n - 1.
        target[row, seq.n_prompt - 1 : n - 1] = 1.0
    return Batch(ids.to(device), attention.to(device), target.to(device))


def per_sample_loss(
    model: torch.nn.Module, batch: Batch, target_loss: str = "mean"
) -> torch.Tensor:
    """(b,) float32 loss of each sequence, ``l(x_i, y_i)``: its target-token NLLs reduced as
    ``target_loss`` says (``knobs.TARGET_LOSSES``; default their mean).

    Logits are computed at the target positions only (``logits.logits_at``): a few tokens
    per sequence instead of every position times the whole vocabulary."""
    rows, columns = batch.target_mask.nonzero(as_tuple=True)  # logits at k predict token k+1
    logits = logits_at(model, batch.input_ids, batch.attention_mask, rows, columns)
    nll = torch.nn.functional.cross_entropy(
        logits, batch.input_ids[rows, columns + 1], reduction="none"
    )
    totals = torch.zeros(batch.input_ids.shape[0], dtype=nll.dtype, device=nll.device)
    if target_loss == "mean":  # summed, then divided: the same rounding as ever
        return totals.index_add(0, rows, nll) / batch.target_mask.sum(dim=1)
    weights = token_weights(batch.target_mask, rows, target_loss).to(nll.dtype)
    return totals.index_add(0, rows, nll * weights)


def token_weights(target_mask: torch.Tensor, rows: torch.Tensor, target_loss: str) -> torch.Tensor:
    """(n,) weight of each target token, in ``target_mask.nonzero()`` order (row by row,
    left to right), so that a sequence's loss is ``sum(weight * nll)`` over its tokens."""
    counts = target_mask.sum(dim=1)[rows]  # the target length of each token's sequence
    if target_loss == "mean":
        return 1.0 / counts
    if target_loss == "sum":
        return torch.ones_like(counts)
    if target_loss == "decision":
        first = torch.ones_like(rows, dtype=torch.bool)
        first[1:] = rows[1:] != rows[:-1]  # nonzero() lists each row's tokens in order
        return torch.where(first, torch.ones_like(counts), 1.0 / (counts - 1).clamp(min=1))
    raise ValueError(f"target_loss must be one of {', '.join(TARGET_LOSSES)}, got {target_loss!r}")
