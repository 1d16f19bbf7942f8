"""Multi-checkpoint features (``features.checkpoints``): LESS's learning-rate weighted sum
over the warmup's epoch-end states, as concatenated scaled unit rows."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grait_engine.features import warmup as warmup_module
from grait_engine.features.compute import FeatureContext, reference_features
from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.features.pergrad import lora_layout
from grait_engine.features.projection import Projector
from grait_engine.features.stage import FeaturesCancelled, run_features
from grait_engine.features_store import FeatureStore
from grait_engine.pipeline.knobs import JobConfigError, JobKnobs
from tests.engine.features.test_stage import (
    CONFIG,
    CORRECT,
    ITEMS,
    SPEED,
    cancel_at_five,
    loaded,
    shard_hashes,
)

TWO = replace(CONFIG, checkpoints=2)  # CONFIG warms up for 2 epochs


def _rows(result) -> tuple[torch.Tensor, torch.Tensor]:
    store = FeatureStore.open(result.features_dir)
    rows = torch.arange(len(store.ids))
    return store.gather("ans", rows), store.gather("idk", rows)


def _run(config: FeaturesConfig, model_dir: Path, out: Path):
    return run_features(config, *loaded(model_dir), ITEMS, CORRECT, out, seed=0, speed=SPEED)


def test_more_checkpoints_than_warmup_epochs_is_refused() -> None:
    with pytest.raises(FeaturesConfigError) as error:
        FeaturesConfig(warmup_epochs=2, checkpoints=3)
    assert error.value.field == "checkpoints" and "warmup_epochs (2)" in str(error.value)
    with pytest.raises(JobConfigError) as job_error:
        JobKnobs.from_dict({"method": {"type": "grait"}, "features": {"checkpoints": 2}})
    assert job_error.value.field == "features.checkpoints"


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """Features with the final state only, with both epochs' states, and with a one-epoch
    warmup (whose final state is the two-epoch warmup's first checkpoint)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "final": _run(CONFIG, tiny_model_dir, root / "final"),
        "two": _run(TWO, tiny_model_dir, root / "two"),
        "epoch1": _run(replace(CONFIG, warmup_epochs=1), tiny_model_dir, root / "epoch1"),
    }


def test_rows_concatenate_each_checkpoint_scaled_by_its_weight(runs) -> None:
    final, two, epoch1 = (_rows(runs[k]) for k in ("final", "two", "epoch1"))
    d = runs["final"].d
    assert runs["two"].d == 2 * d
    scale = math.sqrt(0.5)  # a constant warmup rate: both epochs weigh 1/2
    for side in (0, 1):
        torch.testing.assert_close(two[side][:, :d], epoch1[side] * scale, atol=1e-6, rtol=0)
        torch.testing.assert_close(two[side][:, d:], final[side] * scale, atol=1e-6, rtol=0)
        norms = two[side].norm(dim=1)
        torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-5, rtol=0)
    # The two states differ, so the first half is not a copy of the second.
    assert float((epoch1[1] - final[1]).abs().max()) > 1e-3
    manifest = json.loads((runs["two"].directory / "manifest.json").read_text())
    assert manifest["checkpoint_weights"] == [0.5, 0.5] and manifest["d"] == 2 * d
    assert manifest["checkpoints"] == 2


def test_a_restart_reuses_the_saved_checkpoints(runs, tiny_model_dir, monkeypatch) -> None:
    """Features removed, warmup kept: the stage recomputes from the saved states without
    training again, to byte-identical shards."""
    import shutil

    directory = runs["two"].directory
    before = shard_hashes(directory / "features")
    shutil.rmtree(directory / "features")
    (directory / "manifest.json").unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("the warmup was trained again")

    monkeypatch.setattr(warmup_module, "train_warmup", no_training)
    again = _run(TWO, tiny_model_dir, directory.parent / "two")
    assert not again.skipped and again.d == runs["two"].d
    assert shard_hashes(directory / "features") == before


def test_each_checkpoint_block_is_the_reference_at_that_state(runs, tiny_model_dir) -> None:
    """Block k of a row is ``sqrt(w_k)`` times the per-sample reference features at state k:
    the state's LoRA weights and moments loaded from ``warmup/`` by hand, then the one-backward-
    per-sequence loop (``compute.reference_features``), not the stage's batched path."""
    result = runs["two"]
    model, tokenizer = loaded(tiny_model_dir)
    warmup = warmup_module.load_warmup(result.directory / "warmup", model, result.inputs_hash)
    assert warmup is not None and len(warmup.states) == 2
    layout = lora_layout(warmup.model)
    device = torch.device("cpu")
    projector = Projector(layout.n_params, TWO.dim, 0, device, "float32")
    d = projector.d
    assert result.d == 2 * d
    ans, idk = _rows(result)
    for k, state in enumerate(warmup.states):
        warmup_module.load_lora_weights(warmup.model, state.weights)
        ctx = FeatureContext(
            warmup.model,
            tokenizer,
            layout,
            state.exp_avg,
            state.exp_avg_sq,
            TWO.adam_betas,
            TWO.precondition_eps,
            projector,
            device,
        )
        want_ans, want_idk = reference_features(ctx, ITEMS)
        scale = math.sqrt(state.weight)
        block = slice(k * d, (k + 1) * d)
        # Batched vs per-sample gradients: float rounding only (about 3e-8 seen).
        torch.testing.assert_close(ans[:, block], want_ans * scale, atol=1e-6, rtol=0)
        torch.testing.assert_close(idk[:, block], want_idk * scale, atol=1e-6, rtol=0)


def test_a_cancelled_run_resumes_to_identical_shards(runs, tiny_model_dir, tmp_path) -> None:
    """Two checkpoints, cut after shard 0: the resumed run reuses the saved states and the
    complete shard and writes the uninterrupted run's (K * d wide) shards byte for byte."""
    out, done = tmp_path / "stage", [0]
    with pytest.raises(FeaturesCancelled):
        run_features(
            TWO,
            *loaded(tiny_model_dir),
            ITEMS,
            CORRECT,
            out,
            speed=SPEED,
            callbacks=cancel_at_five(done),
        )
    assert list(shard_hashes(out / "features")) == ["shard-00000.safetensors"]
    resumed = _run(TWO, tiny_model_dir, out)
    assert resumed.reused == 4 and resumed.computed == 6
    assert shard_hashes(out / "features") == shard_hashes(runs["two"].features_dir)
