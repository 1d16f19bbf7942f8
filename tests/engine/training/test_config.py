"""TrainingConfig defaults, validation and dict round trip."""

from __future__ import annotations

import pytest

from grait_engine.training.config import TrainingConfig, TrainingConfigError


def test_defaults_are_the_papers() -> None:
    config = TrainingConfig()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (64, 16.0, 0.1)
    assert config.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert (config.lr, config.weight_decay, config.grad_clip) == (2e-4, 0.0, 1.0)
    assert (config.epochs, config.warmup_ratio, config.batch_size) == (3, 0.03, 8)
    assert (config.grad_accum, config.checkpoint_every, config.max_steps) == (1, 50, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lora_r", 0),
        ("lora_alpha", -1.0),
        ("lora_dropout", 1.0),
        ("lr", 0),
        ("weight_decay", -0.1),
        ("grad_clip", -1),
        ("epochs", 1.5),
        ("warmup_ratio", 1.0),
        ("batch_size", True),
        ("grad_accum", 0),
        ("checkpoint_every", 0),
        ("max_steps", 0),
        ("adam_betas", (0.9, 1.0)),
        ("target_modules", ()),
        # Non-finite numbers: NaN passes "< 0" (grad_clip NaN used to turn clipping off).
        ("grad_clip", float("nan")),
        ("grad_clip", float("inf")),
        ("lr", float("inf")),
        ("lr", float("nan")),
        ("weight_decay", float("nan")),
        ("lora_alpha", float("inf")),
        ("adam_eps", float("inf")),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(TrainingConfigError) as error:
        TrainingConfig(**{field: value})
    assert error.value.field == field
    assert str(error.value).startswith(f"{field}:")


def test_dict_round_trip_and_unknown_keys() -> None:
    config = TrainingConfig(lora_r=4, target_modules=None, max_steps=7)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    assert TrainingConfig.from_dict({"adam_betas": [0.8, 0.9]}).adam_betas == (0.8, 0.9)
    with pytest.raises(TrainingConfigError) as error:
        TrainingConfig.from_dict({"learning_rate": 1e-3})
    assert error.value.field == "learning_rate"
