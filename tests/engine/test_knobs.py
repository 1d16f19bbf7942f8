"""The config base (``grait_engine.knobs``): typed checks naming the knob, the shared LoRA and
AdamW knobs, and ``to_dict()`` output unchanged by the move onto the base."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import pytest

from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.knobs import (
    AdamWSettings,
    AdamWSettingsError,
    LoraSettings,
    LoraSettingsError,
)
from grait_engine.pipeline.knobs import JobConfigError, JobKnobs
from grait_engine.training.config import TrainingConfig, TrainingConfigError

# to_dict() as JSON before the configs moved onto the base (stage keys hash it, reports echo
# it): key order, ints kept as ints, tuples as lists. Knobs added since come last
# (``answer_gradient``, ``target_loss``).
FEATURES_DEFAULT = (
    '{"dim": 8192, "projection_dtype": "auto", "lora_r": 8, "lora_alpha": 16.0, '
    '"lora_dropout": 0.1, "target_modules": null, "lr": 0.0002, "weight_decay": 0.0, '
    '"adam_betas": [0.9, 0.999], "adam_eps": 1e-08, "precondition_eps": 1e-08, '
    '"warmup_epochs": 1, "warmup_batch_size": 8, "warmup_min_correct": 0.99, '
    '"warmup_max_items": 1000, "warmup_fallback_items": 64, "answer_gradient": "adam", "checkpoints": 1}'
)
TRAINING_DEFAULT = (
    '{"lora_r": 64, "lora_alpha": 16.0, "lora_dropout": 0.1, "target_modules": '
    '["q_proj", "k_proj", "v_proj", "o_proj"], "lr": 0.0002, "weight_decay": 0.0, '
    '"adam_betas": [0.9, 0.999], "adam_eps": 1e-08, "grad_clip": 1.0, "epochs": 3, '
    '"warmup_ratio": 0.03, "batch_size": 8, "grad_accum": 1, "checkpoint_every": 50, '
    '"keep_checkpoints": 2, "max_steps": null, "target_loss": "mean"}'
)
FEATURES_SET = {
    "lora_r": 4,
    "lora_alpha": 32,
    "lr": 1,
    "adam_betas": (0, 0.5),
    "target_modules": ("q_proj",),
    "warmup_min_correct": 1,
}
TRAINING_SET = {
    "lora_alpha": 8,
    "weight_decay": 0,
    "grad_clip": 0,
    "adam_betas": [0.5, 0.9],
    "target_modules": None,
    "max_steps": 7,
    "warmup_ratio": 0,
}


def test_to_dict_is_unchanged() -> None:
    assert json.dumps(FeaturesConfig().to_dict()) == FEATURES_DEFAULT
    assert json.dumps(TrainingConfig().to_dict()) == TRAINING_DEFAULT
    # Set knobs: as given (an int stays an int), betas as floats, tuples as lists.
    expected = json.loads(FEATURES_DEFAULT) | FEATURES_SET
    expected |= {"adam_betas": [0.0, 0.5], "target_modules": ["q_proj"]}
    got = FeaturesConfig.from_dict(FEATURES_SET).to_dict()
    assert json.dumps(got) == json.dumps(expected)
    assert json.dumps(got["adam_betas"]) == "[0.0, 0.5]" and json.dumps(got["lr"]) == "1"
    expected = json.loads(TRAINING_DEFAULT) | TRAINING_SET
    got = TrainingConfig.from_dict(TRAINING_SET).to_dict()
    assert json.dumps(got) == json.dumps(expected)
    # JobKnobs.to_dict (the service's stored config) carries the same dicts.
    knobs = JobKnobs.from_dict({"method": {"type": "van"}, "training": TRAINING_SET}).to_dict()
    assert json.dumps(knobs["features"]) == FEATURES_DEFAULT
    assert json.dumps(knobs["training"]) == json.dumps(got)


def test_shared_knobs_are_checked_once() -> None:
    """The flat LoRA/AdamW knobs of both configs use the sub-configs' checks, and the
    ``lora`` / ``adamw`` views give the sub-configs."""
    checks = {spec.name: spec.metadata["check"] for spec in fields(LoraSettings)}
    checks |= {spec.name: spec.metadata["check"] for spec in fields(AdamWSettings)}
    for config_class in (FeaturesConfig, TrainingConfig):
        own = {spec.name: spec.metadata["check"] for spec in fields(config_class)}
        assert own["lora_r"] is checks["r"] and own["lora_dropout"] is checks["dropout"]
        assert own["adam_betas"] is checks["betas"] and own["adam_eps"] is checks["eps"]
    config = TrainingConfig(lora_r=4, lr=1e-3, adam_betas=(0.8, 0.9))
    assert config.lora == LoraSettings(r=4, target_modules=config.target_modules)
    assert config.adamw == AdamWSettings(lr=1e-3, betas=(0.8, 0.9))
    assert FeaturesConfig().lora == LoraSettings()
    with pytest.raises(LoraSettingsError) as lora_error:
        LoraSettings(r=0)
    with pytest.raises(AdamWSettingsError) as adamw_error:
        AdamWSettings(betas=(0.9, 1.0))
    assert (lora_error.value.field, adamw_error.value.field) == ("r", "betas")


# (knob, wrong-typed value): string for a number, float or bool for an integer, list for a
# scalar, scalar for a list, None for a required number.
WRONG_TYPES = [
    ("lr", "x"),
    ("lr", [1e-3]),
    ("lr", True),
    ("lora_r", 2.0),
    ("lora_r", True),
    ("lora_r", "8"),
    ("lora_alpha", None),
    ("lora_dropout", [0.1]),
    ("weight_decay", "0"),
    ("adam_eps", {"x": 1}),
    ("adam_betas", "ab"),
    ("adam_betas", 0.9),
    ("adam_betas", [0.9, "x"]),
    ("adam_betas", [0.9, 0.99, 0.999]),
    ("target_modules", "q_proj"),
    ("target_modules", [1]),
    ("target_modules", []),
]
FEATURES_ONLY = [
    ("dim", 8192.0),
    ("dim", "8192"),
    ("projection_dtype", ["auto"]),
    ("projection_dtype", 1),
    ("precondition_eps", "1e-8"),
    ("warmup_min_correct", None),
    ("warmup_epochs", False),
    ("warmup_max_items", [10]),
    ("answer_gradient", "momentum"),
    ("answer_gradient", None),
]
TRAINING_ONLY = [
    ("epochs", 1.0),
    ("epochs", True),
    ("epochs", "3"),
    ("grad_clip", "1"),
    ("warmup_ratio", [0.1]),
    ("batch_size", 8.5),
    ("max_steps", "7"),
    ("max_steps", False),
    ("keep_checkpoints", None),
    ("target_loss", "median"),
    ("target_loss", ["mean"]),
]


@pytest.mark.parametrize(("knob", "value"), WRONG_TYPES + FEATURES_ONLY)
def test_features_wrong_types_name_the_knob(knob: str, value: Any) -> None:
    with pytest.raises(FeaturesConfigError) as error:
        FeaturesConfig.from_dict({knob: value})
    assert error.value.field == knob
    with pytest.raises(JobConfigError) as job_error:
        JobKnobs.from_dict({"method": {"type": "grait"}, "features": {knob: value}})
    assert job_error.value.field == f"features.{knob}"


@pytest.mark.parametrize(("knob", "value"), WRONG_TYPES + TRAINING_ONLY)
def test_training_wrong_types_name_the_knob(knob: str, value: Any) -> None:
    with pytest.raises(TrainingConfigError) as error:
        TrainingConfig.from_dict({knob: value})
    assert error.value.field == knob
    with pytest.raises(JobConfigError) as job_error:
        JobKnobs.from_dict({"method": {"type": "grait"}, "training": {knob: value}})
    assert job_error.value.field == f"training.{knob}"


def test_messages_cut_long_values() -> None:
    """A huge wrong value is not echoed whole (messages reach clients and logs)."""
    with pytest.raises(JobConfigError) as error:
        JobKnobs.from_dict({"method": {"type": "grait"}, "features": {"lr": "x" * 10_000}})
    assert error.value.field == "features.lr" and len(error.value.message) < 120


@pytest.mark.parametrize(
    ("section", "knob", "value"),
    [
        ("probe", "n_samples", "10"),
        ("probe", "choice_shots", 5.0),
        ("probe", "temperature", "hot"),
        ("probe", "style", ["basic"]),
        ("method", "sign", True),
        ("method", "temperature", [0.05]),
        ("method", "variant", None),
        ("method", "mean_weight", "1"),
        ("method", "reweight_every", "10"),
        ("runtime", "tf32", 1),
        ("runtime", "batch_size", 8.0),
        ("runtime", "quantization", True),
    ],
)
def test_other_sections_wrong_types_name_the_knob(section: str, knob: str, value: Any) -> None:
    """The probe, selection (``method``) and runtime configs are on the same base."""
    data: dict[str, Any] = {"method": {"type": "grait"}}
    data[section] = {**data.get(section, {}), knob: value}
    with pytest.raises(JobConfigError) as error:
        JobKnobs.from_dict(data)
    assert error.value.field == f"{section}.{knob}"
