"""Training sets of each method: budgets, seeds, ordering, weights, notes."""

from __future__ import annotations

import pytest

from grait_engine.methods import build_examples
from grait_engine.selection.inputs import PoolSplit

SPLIT = PoolSplit(
    ik_ids=tuple(f"k{i}" for i in range(10)),
    ik_correctness=tuple(0.5 + i / 20 for i in range(10)),
    idk_ids=tuple(f"u{i}" for i in range(8)),
)
CERTAINTY = {**{f"k{i}": float(i % 5) for i in range(10)}, **{f"u{i}": float(-i) for i in range(8)}}


def test_van_counts_and_answers_only() -> None:
    result = build_examples("van", SPLIT, 4, 3, seed=0)
    assert len(result.entries) == 7 and result.n_idk == 0
    assert all(weight == 1.0 for _, _, weight in result.entries)
    assert len({i for i, _, _ in result.entries}) == 7


def test_cor_rait_counts_roles() -> None:
    result = build_examples("cor_rait", SPLIT, 4, 3, seed=0)
    assert (result.n_ik, result.n_idk) == (4, 3)
    for item_id, refuse, _ in result.entries:
        assert refuse == item_id.startswith("u")
    assert result.notes == ()


@pytest.mark.parametrize("method", ["van", "cor_rait"])
def test_seeds_are_deterministic(method: str) -> None:
    first = build_examples(method, SPLIT, 4, 3, seed=1)
    assert first == build_examples(method, SPLIT, 4, 3, seed=1)
    others = {build_examples(method, SPLIT, 4, 3, seed=s).entries for s in range(2, 8)}
    assert len(others) > 1


def test_corcer_ordering() -> None:
    result = build_examples("corcer_rait", SPLIT, 3, 2, seed=0, certainty=CERTAINTY)
    ik = [i for i, refuse, _ in result.entries if not refuse]
    idk = [i for i, refuse, _ in result.entries if refuse]
    assert ik == ["k4", "k9", "k3"]  # certainty 4, 4 (stable: pool order), 3
    assert idk == ["u7", "u6"]  # least certain first


def test_grait_copies_selection_weights() -> None:
    selection = {
        "items": [
            {"id": "k1", "role": "ik", "score": 0.9, "weight": 1.0},
            {"id": "u2", "role": "idk", "score": 0.1, "weight": 0.25, "alpha": 0.0},
            {"id": "u5", "role": "idk", "score": 0.0, "weight": 1.75, "alpha": 0.1},
        ],
        "notes": ["idk: pool smaller"],
    }
    result = build_examples("grait", SPLIT, 1, 2, seed=0, selection=selection)
    assert result.entries == (("k1", False, 1.0), ("u2", True, 0.25), ("u5", True, 1.75))
    assert result.notes == ("idk: pool smaller",)


def test_budget_larger_than_pool_takes_all_with_note() -> None:
    result = build_examples("cor_rait", SPLIT, 4, 50, seed=0)
    assert result.n_idk == 8
    assert any("idk" in note and "50" in note for note in result.notes)
    corcer = build_examples("corcer_rait", SPLIT, 20, 2, seed=0, certainty=CERTAINTY)
    assert corcer.n_ik == 10 and corcer.notes


def test_unknown_method_and_missing_inputs() -> None:
    with pytest.raises(ValueError):
        build_examples("sft", SPLIT, 1, 1, seed=0)
    with pytest.raises(ValueError):
        build_examples("grait", SPLIT, 1, 1, seed=0)


def test_craft_keeps_fading_idk_items_least_certain_first_and_tops_up() -> None:
    from grait_engine.methods import craft_examples
    from grait_engine.selection.inputs import PoolSplit

    split = PoolSplit(
        ik_ids=("a", "b", "c"), ik_correctness=(0.9, 0.8, 0.7), idk_ids=("x", "y", "z", "w")
    )
    certainty = {"a": -0.1, "b": -0.5, "c": -0.05, "x": -1.0, "y": -0.2, "z": -1.3, "w": -0.4}
    flow = {"a": 0.0, "b": 0.1, "c": -0.1, "x": -0.2, "y": -0.1, "z": 0.3, "w": 0.0}
    out = craft_examples(split, 2, 2, 0, certainty, flow)
    assert [i for i, r, _ in out.entries if not r] == ["c", "a"]  # most certain ik
    assert [i for i, r, _ in out.entries if r] == ["x", "y"]  # z rose, w did not fall
    short = craft_examples(split, 2, 3, 0, certainty, flow)
    refusals = [i for i, r, _ in short.entries if r]
    assert len(refusals) == 3 and set(refusals) == {"x", "y"}
    assert any("topped up" in note for note in short.notes)


def test_rehearsal_takes_sure_items_most_certain_first_or_falls_back_with_a_note() -> None:
    from grait_engine.methods import rehearsal_ids

    correctness = {"a": 1.0, "b": 0.995, "c": 0.6, "d": 0.2}
    certainty = {"a": -0.3, "b": -0.1, "c": -0.05, "d": -0.01}
    assert rehearsal_ids(correctness, certainty, 0.5) == (["b", "a"], [])
    ids, notes = rehearsal_ids({"c": 0.6, "d": 0.2}, certainty, 0.5)
    assert ids == ["c"] and notes and "instead" in notes[0]
    with pytest.raises(ValueError):
        rehearsal_ids({"d": 0.2}, certainty, 0.5)
