"""Logits only where needed (grait_engine.logits) give the numbers the full model gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grait_engine import logits as logits_module
from grait_engine.features.sequences import collate, encode_pair, per_sample_loss
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.probe.batching import left_pad
from tests.engine.features.pools import mixed_items


def full_logits_loss(model, batch) -> torch.Tensor:
    """The textbook per-sample loss: every position's logits, then the target mask."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    nll = torch.nn.functional.cross_entropy(
        out[:, :-1].float().transpose(1, 2), batch.input_ids[:, 1:], reduction="none"
    )
    return (nll * batch.target_mask).sum(1) / batch.target_mask.sum(1)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(ModelSpec(str(tiny_model_dir)))


def _batch(tokenizer):
    sequences = [s for item in mixed_items(4) for s in encode_pair(item, tokenizer)]
    return collate(sequences, tokenizer.pad_token_id, torch.device("cpu"))


def test_target_only_loss_equals_the_full_logits_loss(tiny) -> None:
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    assert logits_module.split(model) is not None  # the split path is the one tested
    torch.testing.assert_close(per_sample_loss(model, batch), full_logits_loss(model, batch))


def full_logits_token_nll(model, batch) -> list[list[float]]:
    """Each sequence's target-token NLLs, in order, from the full logits."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    nll = torch.nn.functional.cross_entropy(
        out[:, :-1].float().transpose(1, 2), batch.input_ids[:, 1:], reduction="none"
    )
    return [row[mask.bool()].tolist() for row, mask in zip(nll, batch.target_mask, strict=True)]


@pytest.mark.parametrize("target_loss", ["decision", "sum"])
def test_other_target_losses_reduce_the_same_token_nlls(tiny, target_loss: str) -> None:
    """``decision``: the first target token plus the mean of the rest; ``sum``: the sum."""
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    tokens = full_logits_token_nll(model, batch)
    assert max(len(t) for t in tokens) > 2  # where the reductions differ
    if target_loss == "sum":
        want = [sum(t) for t in tokens]
    else:
        want = [t[0] + (sum(t[1:]) / len(t[1:]) if len(t) > 1 else 0.0) for t in tokens]
    got = per_sample_loss(model, batch, target_loss)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(got, per_sample_loss(model, batch))  # not the mean


def test_an_unknown_target_loss_is_refused(tiny) -> None:
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="target_loss must be one of mean, decision, sum"):
        per_sample_loss(model, _batch(tokenizer), "median")


def test_models_that_postprocess_logits_run_whole(tiny, monkeypatch) -> None:
    model, tokenizer = tiny
    monkeypatch.setattr(model.config, "final_logit_softcapping", 30.0, raising=False)
    assert logits_module.split(model) is None
    batch = _batch(tokenizer)
    torch.testing.assert_close(per_sample_loss(model, batch), full_logits_loss(model, batch))


def test_letter_logits_are_float32_from_the_hidden_state(tiny_model_dir: Path) -> None:
    """A bfloat16 model's own logits carry about 3 digits; the probe's letter logits are
    the float32 product of the last hidden state with the letters' output rows."""
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir), dtype="bfloat16"))
    prompts = [[1, 40, 41, 42, 43], [1, 50, 51]]
    batch = left_pad(prompts, [0, 1], tokenizer.pad_token_id, torch.device("cpu"))
    letters = torch.tensor([5, 9, 17, 33])
    got = logits_module.last_token_logits(
        model, batch.input_ids, batch.attention_mask, batch.position_ids, letters
    )
    assert got.dtype == torch.float32
    with torch.no_grad():
        hidden = model.get_decoder()(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        ).last_hidden_state[:, -1]
        want = hidden.double() @ model.get_output_embeddings().weight[letters].double().t()
        own = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
        ).logits[:, -1, letters]
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    assert own.dtype == torch.bfloat16  # what the probe read before
