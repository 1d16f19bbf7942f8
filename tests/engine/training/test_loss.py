"""The weighted loss against plain SFT, gradient linearity in the weights, the schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grait_engine.features.sequences import collate, encode, per_sample_loss
from grait_engine.lora import attach_lora, lora_parameters
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.item import Item
from grait_engine.training.loss import (
    epoch_order,
    lr_factor,
    step_rows,
    warmup_steps,
    weighted_loss,
)

ITEMS = [
    Item(id="a", question="What is the capital of France?", answers=("Paris",)),
    Item(id="b", question="Who wrote Hamlet?", answers=("William Shakespeare",)),
    Item(id="c", question="Spider legs?", answers=("eight",)),
]


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir: Path):
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    model = attach_lora(model, 4, 8.0, 0.0, seed=0)
    with torch.no_grad():  # non-zero lora_B so LoRA-A gradients are non-zero too
        for name, param in lora_parameters(model):
            if "lora_B" in name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(1))
    model.eval()
    return model, tokenizer


def _grads(model, fn) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    fn().backward()
    return torch.cat([p.grad.reshape(-1) for _, p in lora_parameters(model)])


def test_all_ones_weights_are_plain_sft(lora_model) -> None:
    model, tokenizer = lora_model
    seqs = [encode(item, i == 1, tokenizer) for i, item in enumerate(ITEMS)]
    pad = tokenizer.pad_token_id
    weighted = weighted_loss(model, seqs, [1.0, 1.0, 1.0], 3, pad)
    # The straightforward implementation: each sample alone, then the mean.
    plain = torch.stack(
        [per_sample_loss(model, collate([s], pad, torch.device("cpu")))[0] for s in seqs]
    ).mean()
    assert float(weighted.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)
    # Accumulation: two micro-batches normalised by the step's 3 samples add up to the same.
    split = weighted_loss(model, seqs[:2], [1.0, 1.0], 3, pad) + weighted_loss(
        model, seqs[2:], [1.0], 3, pad
    )
    assert float(split.detach()) == pytest.approx(float(plain.detach()), rel=1e-5)


def test_doubling_a_weight_doubles_its_gradient(lora_model) -> None:
    model, tokenizer = lora_model
    seqs = [encode(item, False, tokenizer) for item in ITEMS]
    pad = tokenizer.pad_token_id
    base = _grads(model, lambda: weighted_loss(model, seqs, [1.0, 1.0, 1.0], 3, pad))
    doubled = _grads(model, lambda: weighted_loss(model, seqs, [2.0, 1.0, 1.0], 3, pad))
    alone = _grads(model, lambda: weighted_loss(model, seqs[:1], [1.0], 3, pad))
    assert alone.abs().max() > 0
    torch.testing.assert_close(doubled - base, alone, atol=1e-6, rtol=1e-4)
    zero = _grads(model, lambda: weighted_loss(model, seqs, [0.0, 1.0, 1.0], 3, pad))
    torch.testing.assert_close(base - zero, alone, atol=1e-6, rtol=1e-4)


def test_lr_schedule_warmup_then_cosine() -> None:
    total, warmup = 100, warmup_steps(100, 0.03)
    assert warmup == 3
    factors = [lr_factor(s, warmup, total) for s in range(total + 1)]
    assert factors[:3] == pytest.approx([0.25, 0.5, 0.75])  # linear, never 0
    assert factors[3] == 1.0  # the peak right after warmup
    assert factors[3 + 97 // 2] == pytest.approx(0.5, abs=0.02)  # cosine midpoint
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    assert factors[total] == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0, 0, 10) == 1.0  # no warmup: starts at the peak


def test_epoch_order_is_seeded_and_steps_cover_it() -> None:
    assert epoch_order(10, 0, 1) == epoch_order(10, 0, 1)
    assert epoch_order(10, 0, 0) != epoch_order(10, 0, 1)
    assert sorted(epoch_order(10, 3, 2)) == list(range(10))
    order = list(range(7))
    assert step_rows(order, 0, 2, 2) == [[0, 1], [2, 3]]
    assert step_rows(order, 1, 2, 2) == [[4, 5], [6]]
