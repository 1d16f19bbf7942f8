"""Features of a group of items: batched (the stage) and per-sample (the reference).

Both give, for ``n`` items, ``(F_ans, F_idk)``, each (n, d) float32 unit rows, through the
same preconditioning and projection; they differ only in how the gradients are obtained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grait_engine.features import fused
from grait_engine.features.pergrad import LoraLayout, module_grads, reference_grad
from grait_engine.features.projection import Projector, answer_rows, precondition
from grait_engine.features.sequences import Encoded, collate, encode_pair
from grait_engine.memory import Batching
from grait_engine.records.item import Item


@dataclass(frozen=True)
class FeatureContext:
    """Everything needed to turn items into features.

    ``model``: the warmed-up PeftModel in eval mode, LoRA weights requiring grad;
    ``exp_avg`` / ``exp_avg_sq``: (D,) float32 warmup moments on the model's device, in
    ``layout`` order; ``betas`` / ``eps``: preconditioning constants; ``target_loss``:
    the training loss the gradients are taken of (``knobs.TARGET_LOSSES``);
    ``answer_gradient``: how the answer-side rows are preconditioned
    (``FeaturesConfig.answer_gradient``; the refusal side is always Adam's).
    """

    model: torch.nn.Module
    tokenizer: Any
    layout: LoraLayout
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    betas: tuple[float, float]
    eps: float
    projector: Projector
    device: torch.device
    target_loss: str = "mean"
    answer_gradient: str = "adam"

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def batched_features(
    ctx: FeatureContext,
    items: Sequence[Item],
    batch_size: int | Batching,
    before_batch: Callable[[], None] | None = None,
    *,
    answers: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_ans, F_idk) of ``items``: both targets of all items in one gradient buffer.

    The 2n sequences are sorted by length (longest first, so a batch size that does not fit
    fails at once) and cut into batches of ``batch_size`` sequences, mixing ans and idk rows;
    each batch's per-sample gradients are preconditioned one LoRA matrix at a time and
    written to rows ``[ans of item 0..n-1, idk of item 0..n-1]`` of a (2n, D) buffer in the
    projector's row dtype (with ``ctx.answer_gradient`` other than ``adam``, the answer rows
    hold ``projection.answer_rows`` of the same gradients instead), which is then projected
    in one call. Memory: that buffer plus one
    batch's activations and one matrix's (b, size) float32 gradients. A batch that runs out
    of memory is retried at half the size (a :class:`memory.Batching` keeps the smaller
    size for the caller's next group). ``before_batch`` runs before each forward pass
    (cancel checks). ``answers=False`` computes the refusal rows only (half the work; the
    training stage's dynamic weights need no F_ans): F_ans is then (0, d).
    """
    pairs = [encode_pair(item, ctx.tokenizer) for item in items]
    n_answers = len(items) if answers else 0
    sequences: list[Encoded] = [ans for ans, _ in pairs[:n_answers]] + [idk for _, idk in pairs]
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].ids))
    buffer = torch.empty(
        len(sequences), ctx.layout.n_params, dtype=ctx.projector.row_dtype, device=ctx.device
    )
    fused_kernels = fused.available(ctx.device)

    def work(rows: list[int]) -> None:
        if before_batch is not None:
            before_batch()
        batch = collate([sequences[i] for i in rows], ctx.pad_id, ctx.device)
        index = torch.tensor(rows, device=ctx.device)
        is_answer = index < n_answers  # buffer rows 0..n_answers-1 are the answer targets
        for k, grads in module_grads(ctx.model, batch, ctx.layout, ctx.target_loss):
            offset, size = ctx.layout.offsets[k], ctx.layout.sizes[k]
            moments = ctx.exp_avg[offset : offset + size], ctx.exp_avg_sq[offset : offset + size]
            answers = None
            if ctx.answer_gradient != "adam":  # taken before preconditioning overwrites grads
                answers = answer_rows(
                    grads[is_answer], moments[1], ctx.betas[1], ctx.eps, ctx.answer_gradient
                )
            if fused_kernels:  # one pass: precondition, cast, scatter (fused.py)
                fused.precondition_into(grads, *moments, ctx.betas, ctx.eps, buffer, index, offset)
            else:
                preconditioned = precondition(grads.float(), *moments, ctx.betas, ctx.eps)
                buffer[index, offset : offset + size] = preconditioned.to(buffer.dtype)
            if answers is not None:
                buffer[index[is_answer], offset : offset + size] = answers.to(buffer.dtype)

    Batching.of(batch_size, "features").run(order, work)
    features = ctx.projector.project(buffer).cpu()
    return features[:n_answers], features[n_answers:]


def reference_features(
    ctx: FeatureContext, items: Sequence[Item]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(F_ans, F_idk) of ``items`` by the per-sample loop: batch size 1, one backward per
    sequence, plain ``.grad``; then the same preconditioning and projection, item by item."""
    ans_rows, idk_rows = [], []
    for item in items:
        grads = torch.stack(
            [
                reference_grad(
                    ctx.model,
                    collate([seq], ctx.pad_id, ctx.device),
                    ctx.layout,
                    ctx.target_loss,
                )
                for seq in encode_pair(item, ctx.tokenizer)
            ]
        )
        features = _finish(ctx, grads)
        ans_rows.append(features[0])
        idk_rows.append(features[1])
    return torch.stack(ans_rows), torch.stack(idk_rows)


def _finish(ctx: FeatureContext, grads: torch.Tensor) -> torch.Tensor:
    """Precondition (in place) and project (2, D) gradients (answer, refusal) to (2, d) unit
    rows on the CPU."""
    answer = None
    if ctx.answer_gradient != "adam":
        answer = answer_rows(grads[:1], ctx.exp_avg_sq, ctx.betas[1], ctx.eps, ctx.answer_gradient)
    preconditioned = precondition(grads, ctx.exp_avg, ctx.exp_avg_sq, ctx.betas, ctx.eps)
    if answer is not None:
        preconditioned[:1] = answer
    return ctx.projector.project(preconditioned).cpu()
