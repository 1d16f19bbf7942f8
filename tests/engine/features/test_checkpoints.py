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
from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.features.stage import run_features
from grait_engine.features_store import FeatureStore
from grait_engine.pipeline.knobs import JobConfigError, JobKnobs
from tests.engine.features.test_stage import CONFIG, CORRECT, ITEMS, SPEED, loaded, shard_hashes

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
