"""Dynamic weights (``selection.weighting = dynamic``): the formula, the features it reads,
and the training stage that recomputes them, checkpoints them and resumes with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from grait_engine.artifacts import read_manifest
from grait_engine.features.compute import FeatureContext, reference_features
from grait_engine.features.pergrad import lora_layout
from grait_engine.features.projection import Projector
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.selection.weights import adaptive_weights
from grait_engine.stages import StageCallbacks
from grait_engine.training.checkpoint import STATE_JSON
from grait_engine.training.reweight import Reweighting, dynamic_weights, refusal_features
from grait_engine.training.stage import TrainingCancelled, run_training
from grait_engine.training.step import setup_run, train_step
from tests.engine.training.test_stage import CONFIG, EXAMPLES, _adapter

# CONFIG trains EXAMPLES in 2 steps per epoch, 3 epochs: recomputed before steps 2 and 4.
REWEIGHTING = Reweighting(temperature=0.05, sign=-1, mean_weight=1.0, dim=64, seed=5)


def _train(model_dir: Path, out: Path, reweighting: Reweighting | None = REWEIGHTING, **heard):
    model, tokenizer = load_model(ModelSpec(str(model_dir)))
    return run_training(
        model,
        tokenizer,
        EXAMPLES,
        CONFIG,
        out,
        seed=3,
        callbacks=StageCallbacks(**heard),
        reweighting=reweighting,
    )


def test_due_once_per_epoch_or_every_k_steps() -> None:
    per_epoch = [s for s in range(7) if REWEIGHTING.due(s, steps_per_epoch=2, total=6)]
    assert per_epoch == [2, 4]  # never before the first step, never after the last
    every3 = Reweighting(0.05, -1, 1.0, every=3)
    assert [s for s in range(10) if every3.due(s, steps_per_epoch=2, total=9)] == [3, 6]


def test_dynamic_weights_follow_stage_5_over_the_training_groups() -> None:
    generator = torch.Generator().manual_seed(0)
    rows = torch.nn.functional.normalize(torch.randn(6, 8, generator=generator), dim=1)
    refuse = [False, True, False, True, True, False]
    weights, summary = dynamic_weights(rows, refuse, REWEIGHTING)
    idk = rows[[1, 3, 4]].double()
    ik = rows[[0, 2, 5]].double()
    alpha = idk @ ik.mean(0) - idk @ idk.mean(0)  # by hand, not via alpha_scores
    expected = adaptive_weights(alpha, 0.05, -1, 1.0)
    assert [weights[i] for i in (0, 2, 5)] == [1.0, 1.0, 1.0]
    assert [weights[i] for i in (1, 3, 4)] == pytest.approx(expected.tolist())
    assert sum(weights[i] for i in (1, 3, 4)) / 3 == pytest.approx(1.0)
    assert summary["alpha_spread"] == pytest.approx(float(alpha.max() - alpha.min()))
    assert summary["weight_max"] == pytest.approx(float(expected.max()))
    with pytest.raises(ValueError, match="at least one refusal"):
        dynamic_weights(rows, [False] * 6, REWEIGHTING)


def test_refusal_features_are_stage_3_features_of_the_adapter_being_trained(
    tiny_model_dir: Path,
) -> None:
    """After two optimiser steps, the batched refusal rows equal the per-sample reference
    (plain ``.grad``, one sequence at a time) preconditioned with the run's own moments."""
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    run = setup_run(model, CONFIG, len(EXAMPLES), seed=3)
    from grait_engine.features.sequences import encode

    sequences = [encode(e.item, e.refuse, tokenizer) for e in EXAMPLES]
    weights = [e.weight for e in EXAMPLES]
    for _ in range(2):
        train_step(run, sequences, weights, 3, CONFIG, tokenizer.pad_token_id, None)
    before = {name: p.detach().clone() for name, p in run.params}
    rows = refusal_features(
        run.model, tokenizer, EXAMPLES, run.optimizer, CONFIG.adam_betas, REWEIGHTING, "mean", 2
    )
    assert rows.shape == (len(EXAMPLES), 64)
    torch.testing.assert_close(rows.norm(dim=1), torch.ones(len(EXAMPLES)))
    assert run.model.training  # put back in train mode
    assert all(torch.equal(before[name], p) for name, p in run.params)  # weights untouched

    layout = lora_layout(run.model)
    state = [run.optimizer.state[m.weight] for m in layout.modules]
    ctx = FeatureContext(
        run.model,
        tokenizer,
        layout,
        torch.cat([s["exp_avg"].reshape(-1) for s in state]),
        torch.cat([s["exp_avg_sq"].reshape(-1) for s in state]),
        CONFIG.adam_betas,
        REWEIGHTING.eps,
        Projector(layout.n_params, 64, REWEIGHTING.seed),
        torch.device("cpu"),
    )
    run.model.eval()
    _, reference = reference_features(ctx, [e.item for e in EXAMPLES])
    torch.testing.assert_close(rows, reference, atol=2e-4, rtol=0)


def test_training_recomputes_records_and_uses_the_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    metrics: list[tuple[str, int, float]] = []
    messages: list[str] = []
    result = _train(
        tiny_model_dir,
        tmp_path / "dynamic",
        metric=lambda *m: metrics.append(m),
        progress=lambda stage, done, total, message: messages.append(message),
    )
    manifest = read_manifest(tmp_path / "dynamic")
    assert manifest is not None
    assert [r["step"] for r in manifest["reweights"]] == [2, 4]
    assert all(r["weight_min"] <= 1.0 <= r["weight_max"] for r in manifest["reweights"])
    assert [step for name, step, _ in metrics if name == "train/weight_max"] == [2, 4]
    assert sum("recomputing the weights of 2 refusals" in m for m in messages) == 2
    state = json.loads((tmp_path / "dynamic/checkpoints/step-000006" / STATE_JSON).read_text())
    refusals = [w for w, e in zip(state["weights"], EXAMPLES, strict=True) if e.refuse]
    assert [w for w, e in zip(state["weights"], EXAMPLES, strict=True) if not e.refuse] == [1.0] * 3
    assert refusals != [e.weight for e in EXAMPLES if e.refuse]  # recomputed, not the start

    fixed = _train(tiny_model_dir, tmp_path / "fixed", reweighting=None)
    assert fixed.inputs_hash != result.inputs_hash
    assert "reweights" not in (read_manifest(tmp_path / "fixed") or {})
    a, b = _adapter(result.adapter_dir), _adapter(fixed.adapter_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-6  # the weights took part


def test_cancel_then_resume_keeps_the_recomputed_weights(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Cancelled after step 3 (weights recomputed before step 2), resumed: the same adapter
    as an uninterrupted run, so the checkpoint carried the weights in use."""
    full = _train(tiny_model_dir, tmp_path / "full")
    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        _train(tiny_model_dir, tmp_path / "cut", cancel=lambda: next(calls) == 3)
    resumed = _train(tiny_model_dir, tmp_path / "cut")
    assert resumed.resumed_from == 3
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert (
        read_manifest(tmp_path / "cut")["reweights"]
        == read_manifest(tmp_path / "full")["reweights"]
    )
