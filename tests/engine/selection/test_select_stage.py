"""The stage end to end on a small feature store, against the N x N reference pipeline."""

from __future__ import annotations

import json

import pytest
import torch

from grait_engine.artifacts import read_manifest
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.greedy import GreedyTuning
from grait_engine.selection.inputs import PoolSplit, SelectionInputError
from grait_engine.selection.reference import (
    reference_alpha,
    reference_greedy,
    reference_weights,
    similarity_matrices,
)
from grait_engine.selection.stage import SelectionCancelled, run_selection
from grait_engine.stages import StageCallbacks
from tests.engine.selection.synthetic import features, write_store

N, D = 300, 16


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    directory = tmp_path_factory.mktemp("features")
    ans, idk = features(N, D, 1), features(N, D, 2, "clustered")
    ids = write_store(directory, ans, idk, shard_rows=64)
    generator = torch.Generator().manual_seed(3)
    correctness = torch.rand(N, generator=generator).round(decimals=1)  # many exact ties
    # Shuffle the order the probe reports items in: the stage must not depend on it.
    order = torch.randperm(N, generator=generator).tolist()
    split = PoolSplit.from_probe([ids[i] for i in order], correctness[order].tolist(), tau=0.5)
    return directory, ids, ans, idk, correctness, split


def expected_selection(world, config):
    _, ids, ans, idk, correctness, split = world
    row = {item_id: i for i, item_id in enumerate(ids)}
    ik_rows = torch.tensor(sorted(row[i] for i in split.ik_ids))
    idk_rows = torch.tensor(sorted(row[i] for i in split.idk_ids))
    ik_sel = ik_rows[torch.sort(correctness[ik_rows], descending=True, stable=True).indices][
        : config.n_ik
    ]
    s_ii, s_ia = similarity_matrices(idk[idk_rows], ans[ik_sel])
    run = reference_greedy(s_ia, s_ii, config.n_idk)
    chosen = idk_rows[run.order]
    full = idk.double() @ idk.double().T
    alpha = reference_alpha(full[chosen][:, ik_rows], full[chosen][:, idk_rows])
    weights = reference_weights(alpha, config.temperature, config.sign, config.mean_weight)
    return [ids[i] for i in ik_sel], [ids[i] for i in chosen], run.scores, alpha, weights


def test_stage_equals_the_reference_pipeline(world, tmp_path):
    config = SelectionConfig(n_ik=40, n_idk=35, variant="greedy")
    calls = []
    tuning = GreedyTuning(candidates=8, first_block=4, max_block=16)
    callbacks = StageCallbacks(progress=lambda *args: calls.append(args))
    result = run_selection(
        config,
        world[5],
        world[0],
        tmp_path,
        seed=7,
        tuning=tuning,
        block_rows=50,
        callbacks=callbacks,
    )
    assert not result.skipped and result.n_ik == 40 and result.n_idk == 35
    doc = json.loads(result.path.read_text())
    ik_ids, idk_ids, scores, alpha, weights = expected_selection(world, config)
    ik_items = [item for item in doc["items"] if item["role"] == "ik"]
    idk_items = [item for item in doc["items"] if item["role"] == "idk"]
    assert [item["id"] for item in ik_items] == ik_ids
    assert all(item["weight"] == 1.0 for item in ik_items)
    assert [item["id"] for item in idk_items] == idk_ids
    got = {
        key: torch.tensor([item[key] for item in idk_items], dtype=torch.float64)
        for key in ("score", "alpha", "weight")
    }
    torch.testing.assert_close(got["score"], scores, rtol=0, atol=1e-9)
    torch.testing.assert_close(got["alpha"], alpha, rtol=0, atol=1e-12)
    torch.testing.assert_close(got["weight"], weights, rtol=1e-9, atol=0)
    assert doc["variant"] == "greedy" and doc["knobs"]["seed"] == 7
    assert doc["knobs"] == {**config.knobs(), "seed": 7}
    assert doc["summary"]["weights"]["mean"] == pytest.approx(1.0)
    assert doc["summary"]["pools"] == {"ik": len(world[5].ik_ids), "idk": len(world[5].idk_ids)}
    assert doc["summary"]["greedy"]["passes"] >= 2 and doc["notes"] == []
    assert calls[0][:3] == ("select", 0, 35) and calls[-1][:3] == ("select", 35, 35)
    assert read_manifest(tmp_path)["inputs_hash"]


def test_rerun_is_skipped_and_the_same_seed_gives_the_same_file(world, tmp_path):
    config = SelectionConfig(n_ik=20, n_idk=25, variant="random")
    first = run_selection(config, world[5], world[0], tmp_path / "a", seed=1)
    again = run_selection(config, world[5], world[0], tmp_path / "a", seed=1)
    assert again.skipped and not first.skipped
    same = run_selection(config, world[5], world[0], tmp_path / "b", seed=1)
    assert same.path.read_text() == first.path.read_text()
    other = run_selection(config, world[5], world[0], tmp_path / "a", seed=2)
    assert not other.skipped  # a different seed is a different input
    assert other.path.read_text() != same.path.read_text()


def test_budgets_larger_than_the_pools_take_all_and_say_so(world, tmp_path):
    split = world[5]
    config = SelectionConfig(n_ik=10_000, n_idk=10_000, weighting="none", variant="o1_top")
    result = run_selection(config, split, world[0], tmp_path)
    doc = json.loads(result.path.read_text())
    assert doc["n_ik"] == len(split.ik_ids) and doc["n_idk"] == len(split.idk_ids)
    assert doc["n_ik_requested"] == 10_000
    assert f"N_ik=10000 larger than ik pool ({len(split.ik_ids)}): took all" in doc["notes"]
    assert f"N_idk=10000 larger than idk pool ({len(split.idk_ids)}): took all" in doc["notes"]
    assert {item["weight"] for item in doc["items"]} == {1.0}
    assert doc["summary"]["alpha"] is not None


def test_sign_flips_the_weight_order_in_the_stage(world, tmp_path):
    def weights(sign):
        config = SelectionConfig(n_ik=30, n_idk=20, sign=sign)
        doc = json.loads(
            run_selection(config, world[5], world[0], tmp_path / str(sign)).path.read_text()
        )
        return torch.tensor([item["weight"] for item in doc["items"] if item["role"] == "idk"])

    assert torch.argsort(weights(-1)).tolist() == torch.argsort(weights(1)).flip(0).tolist()


def test_bad_inputs_and_cancel(world, tmp_path):
    bad = PoolSplit(("q0000",), (1.0,), ("nope",))
    with pytest.raises(SelectionInputError, match="nope"):
        run_selection(SelectionConfig(), bad, world[0], tmp_path / "bad")
    with pytest.raises(SelectionCancelled):
        run_selection(
            SelectionConfig(n_ik=5, n_idk=5),
            world[5],
            world[0],
            tmp_path / "c",
            callbacks=StageCallbacks(cancel=lambda: True),
        )
    assert not (tmp_path / "c" / "selection.json").exists()


@pytest.mark.parametrize("variant", ["greedy", "o1_top", "random", "code_literal"])
def test_empty_budgets_and_empty_pools(world, tmp_path, variant):
    directory, ids = world[0], world[1]
    config = SelectionConfig(n_ik=0, n_idk=0, variant=variant)
    doc = json.loads(run_selection(config, world[5], directory, tmp_path / "zero").path.read_text())
    assert doc["items"] == [] and doc["summary"]["weights"] is None
    no_idk = PoolSplit(tuple(ids[:10]), (1.0,) * 10, ())
    config = SelectionConfig(n_ik=3, n_idk=5, variant=variant)
    doc = json.loads(run_selection(config, no_idk, directory, tmp_path / "noidk").path.read_text())
    assert doc["n_ik"] == 3 and doc["n_idk"] == 0
    assert "N_idk=5 larger than idk pool (0): took all" in doc["notes"]
    no_ik = PoolSplit((), (), tuple(ids[:50]))
    doc = json.loads(run_selection(config, no_ik, directory, tmp_path / "noik").path.read_text())
    assert doc["n_ik"] == 0 and doc["n_idk"] == 5
    assert any("ik pool is empty" in note for note in doc["notes"])
