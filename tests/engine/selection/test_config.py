"""Knob validation: clear errors naming the field."""

from __future__ import annotations

import math

import pytest

from grait_engine.selection.config import SelectionConfig, SelectionConfigError
from grait_engine.selection.inputs import PoolSplit, SelectionInputError


def test_defaults_and_knobs():
    config = SelectionConfig()
    assert config.knobs() == {
        "n_ik": 4000,
        "n_idk": 1000,
        "variant": "stratified",
        "weighting": "adaptive",
        "temperature": 0.05,
        "sign": -1,
        "mean_weight": 1.0,
        "reweight_every": None,
    }
    released = SelectionConfig.from_dict({"sign": 1, "mean_weight": 0.5, "temperature": 1})
    assert released.temperature == 1.0 and isinstance(released.temperature, float)


@pytest.mark.parametrize(
    "field,value",
    [
        ("temperature", 0),
        ("temperature", -0.1),
        ("temperature", math.inf),
        ("temperature", math.nan),
        ("temperature", "0.05"),
        ("mean_weight", 0),
        ("mean_weight", -1.0),
        ("sign", 0),
        ("sign", 2),
        ("sign", -0.5),
        ("sign", True),
        ("variant", "greedy2"),
        ("weighting", "softmax"),
        ("reweight_every", 0),
        ("reweight_every", 2.5),
        ("n_ik", -1),
        ("n_idk", -5),
        ("n_idk", 2.5),
        ("n_ik", True),
    ],
)
def test_bad_knobs_are_rejected_with_the_field(field, value):
    with pytest.raises(SelectionConfigError) as error:
        SelectionConfig(**{field: value})
    assert error.value.field == field
    assert field in str(error.value)


def test_unknown_knob_is_rejected():
    with pytest.raises(SelectionConfigError) as error:
        SelectionConfig.from_dict({"temprature": 0.1})
    assert error.value.field == "temprature"


def test_pool_split_validation_and_from_probe():
    split = PoolSplit.from_probe(["a", "b", "c", "d"], [0.9, 0.2, 0.5, 0.49], tau=0.5)
    assert split.ik_ids == ("a", "c") and split.ik_correctness == (0.9, 0.5)
    assert split.idk_ids == ("b", "d")
    with pytest.raises(SelectionInputError, match="ik_correctness"):
        PoolSplit(("a",), (1.5,), ())
    with pytest.raises(SelectionInputError, match="ik_correctness"):
        PoolSplit(("a", "b"), (0.5,), ())
    with pytest.raises(SelectionInputError, match="duplicate"):
        PoolSplit((), (), ("x", "x"))
    with pytest.raises(SelectionInputError, match="also ik"):
        PoolSplit(("x",), (1.0,), ("x",))
    with pytest.raises(SelectionInputError, match="NaN"):
        PoolSplit.from_probe(["a"], [math.nan])
    assert (
        split.digest() == PoolSplit.from_probe(["a", "b", "c", "d"], [0.9, 0.2, 0.5, 0.49]).digest()
    )
