"""ProbeConfig: METHOD.md defaults and validation of every knob."""

from __future__ import annotations

import pytest

from grait_engine.probe.config import ProbeConfig, ProbeConfigError


def test_defaults_follow_method():
    config = ProbeConfig()
    assert (config.choice_shots, config.open_shots) == (5, 3)
    assert (config.n_samples, config.temperature, config.max_new_tokens) == (10, 1.0, 32)
    assert config.style == "basic"
    assert config.shots_for("choice") == 5 and config.shots_for("open") == 3


def test_round_trip_and_canonical_types():
    config = ProbeConfig.from_dict({"temperature": 1, "n_samples": 4})
    assert config.to_dict()["temperature"] == 1.0
    assert isinstance(config.to_dict()["temperature"], float)
    assert ProbeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"style": "chat"}, "style"),
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.0}, "n_samples"),
        ({"choice_shots": -1}, "choice_shots"),
        ({"open_shots": True}, "open_shots"),
        ({"temperature": 0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "1"}, "temperature"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"n_sample": 3}, "n_sample"),
    ],
)
def test_bad_knobs_name_their_field(values, field):
    with pytest.raises(ProbeConfigError) as error:
        ProbeConfig.from_dict(values)
    assert error.value.field == field
