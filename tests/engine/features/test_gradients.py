"""Per-sample gradients from hooks, and batched features, against the per-sample reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from grait_engine.features.compute import batched_features, reference_features
from grait_engine.features.pergrad import per_sample_grads, reference_grad
from grait_engine.features.projection import precondition
from grait_engine.features.sequences import collate, encode_pair
from grait_engine.lora import lora_parameters
from tests.engine.features.pools import mixed_items, random_lora_context


@pytest.fixture(scope="module")
def ctx(tiny_model_dir):
    return random_lora_context(tiny_model_dir)


def test_encoding_masks_the_prompt(ctx) -> None:
    ans, idk = encode_pair(mixed_items(1)[0], ctx.tokenizer)
    assert ans.ids[0] == ctx.tokenizer.bos_token_id
    assert ans.ids[: ans.n_prompt] == idk.ids[: idk.n_prompt]
    assert ans.n_target > 0 and idk.n_target > 0
    batch = collate([ans, idk], ctx.pad_id, ctx.device)
    assert batch.target_mask.sum(dim=1).tolist() == [ans.n_target, idk.n_target]


def test_hook_grads_equal_autograd_per_sample(ctx) -> None:
    sequences = [seq for item in mixed_items(5) for seq in encode_pair(item, ctx.tokenizer)]
    assert len({len(seq.ids) for seq in sequences}) > 3  # padding in the batch
    with torch.enable_grad():
        batched = per_sample_grads(
            ctx.model, collate(sequences, ctx.pad_id, ctx.device), ctx.layout
        )
        reference = torch.stack(
            [
                reference_grad(ctx.model, collate([s], ctx.pad_id, ctx.device), ctx.layout)
                for s in sequences
            ]
        )
    assert batched.shape == (len(sequences), ctx.layout.n_params)
    assert reference.abs().max() > 0 and not batched.requires_grad
    torch.testing.assert_close(batched, reference, rtol=1e-4, atol=1e-6)
    assert all(param.grad is None for _, param in lora_parameters(ctx.model))


def test_batched_features_match_the_reference_loop(ctx) -> None:
    items = mixed_items(7)
    with torch.enable_grad():
        ans, idk = batched_features(ctx, items, batch_size=5)
        ref_ans, ref_idk = reference_features(ctx, items)
    assert ans.shape == idk.shape == (7, ctx.projector.d)
    for got, want in ((ans, ref_ans), (idk, ref_idk)):
        cosine = (got * want).sum(dim=1)
        assert cosine.min() >= 0.999, cosine
        torch.testing.assert_close(got.norm(dim=1), torch.ones(7))
    assert not torch.allclose(ans, idk)


def test_batch_size_changes_rounding_only(ctx) -> None:
    items = mixed_items(4)
    with torch.enable_grad():
        one = batched_features(ctx, items, batch_size=1)
        many = batched_features(ctx, items, batch_size=8)
    for a, b in zip(one, many, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("answer_gradient", ["gradient", "rms"])
def test_answer_gradient_changes_the_answer_rows_only(ctx, answer_gradient: str) -> None:
    """``gradient``: F_ans is the projected plain gradient; ``rms``: ``g / sqrt(v')``. The
    refusal rows stay Adam's, and the batched path agrees with the reference loop."""
    items = mixed_items(5)
    other = dataclasses.replace(ctx, answer_gradient=answer_gradient)
    with torch.enable_grad():
        adam_ans, adam_idk = batched_features(ctx, items, batch_size=4)
        ans, idk = batched_features(other, items, batch_size=4)
        ref_ans, ref_idk = reference_features(other, items)
        grads = torch.stack(
            [
                reference_grad(ctx.model, collate([pair[0]], ctx.pad_id, ctx.device), ctx.layout)
                for pair in (encode_pair(item, ctx.tokenizer) for item in items)
            ]
        )
    torch.testing.assert_close(idk, adam_idk)
    assert (ans * adam_ans).sum(dim=1).max() < 0.99  # the answer rows did change
    assert ((ans * ref_ans).sum(dim=1).min() >= 0.999) and (
        (idk * ref_idk).sum(dim=1).min() >= 0.999
    )
    if answer_gradient == "gradient":
        want = grads
    else:
        b2, eps = ctx.betas[1], ctx.eps
        want = grads / torch.sqrt((1 - b2) * grads.square() + b2 * ctx.exp_avg_sq + eps)
    assert not torch.allclose(
        want, precondition(grads.clone(), ctx.exp_avg, ctx.exp_avg_sq, ctx.betas, ctx.eps)
    )
    expected = ctx.projector.project(want)
    cosine = (ans * expected).sum(dim=1)
    assert cosine.min() >= 0.999, cosine


def test_target_loss_changes_the_gradients(ctx) -> None:
    items = mixed_items(4)
    decision = dataclasses.replace(ctx, target_loss="decision")
    with torch.enable_grad():
        mean_ans, mean_idk = batched_features(ctx, items, batch_size=4)
        ans, idk = batched_features(decision, items, batch_size=4)
        ref_ans, ref_idk = reference_features(decision, items)
    assert (idk * mean_idk).sum(dim=1).min() < 0.999  # refusals have several target tokens
    assert (ans * ref_ans).sum(dim=1).min() >= 0.999
    assert (idk * ref_idk).sum(dim=1).min() >= 0.999
