"""The ik/idk split: counts, the tau boundary and validation, reuse, selection input."""

from __future__ import annotations

import json

import pytest

from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.stage import run_probe
from grait_engine.probe.store import ProbeIncompleteError
from grait_engine.split.stage import load_split, run_split, split_document
from tests.engine.probe.pools import choice_items


def test_split_document_counts_and_boundary():
    doc = split_document(["a", "b", "c", "d"], [0.9, 0.5, 0.49, 0.0], tau=0.5)
    assert (doc["n_pool"], doc["n_ik"], doc["n_idk"]) == (4, 2, 2)
    assert doc["ik"] == ["a", "b"] and doc["idk"] == ["c", "d"]  # c == tau goes to ik
    assert split_document(["a", "b"], [0.0, 1.0], tau=0.0)["n_ik"] == 2
    assert split_document(["a", "b"], [0.99, 1.0], tau=1.0)["ik"] == ["b"]


@pytest.mark.parametrize("tau", [-0.1, 1.5, float("nan"), "0.5", True, None])
def test_bad_tau_is_rejected(tau):
    with pytest.raises(ValueError, match="tau"):
        split_document(["a"], [0.5], tau)


def test_run_split_on_a_probe(tiny, tmp_path):
    items = choice_items(12)
    run_probe(*tiny, items, tmp_path / "probe", config=ProbeConfig(choice_shots=1))
    result = run_split(tmp_path / "probe", tmp_path / "split", tau=0.25)
    document = json.loads(result.path.read_text())
    correctness = document["correctness"]
    assert list(correctness) == [i.id for i in items]
    assert document["ik"] == [i for i, c in correctness.items() if c >= 0.25]
    assert (result.n_pool, result.n_ik + result.n_idk) == (12, 12)
    assert (result.n_ik, result.n_idk) == (document["n_ik"], document["n_idk"])
    assert document["task"] == "choice" and not result.skipped
    assert run_split(tmp_path / "probe", tmp_path / "split", tau=0.25).skipped
    assert not run_split(tmp_path / "probe", tmp_path / "split", tau=0.3).skipped
    pools = load_split(tmp_path / "split")
    assert pools.ik_ids == tuple(document["ik"]) and pools.idk_ids == tuple(document["idk"])
    assert pools.ik_correctness == tuple(correctness[i] for i in document["ik"])


def test_split_needs_a_complete_probe(tmp_path):
    with pytest.raises(ProbeIncompleteError):
        run_split(tmp_path, tmp_path / "split")
    with pytest.raises(ValueError, match="tau"):
        run_split(tmp_path, tmp_path / "split", tau=2)
