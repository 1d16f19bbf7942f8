"""Gradient features (METHOD.md stage 3): warmup LoRA, batched per-sample Adam-preconditioned
projected gradients, written in resumable shards (``features_store`` format)."""

from grait_engine.features.compute import FeatureContext, batched_features, reference_features
from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.features.pergrad import LoraLayout, lora_layout, per_sample_grads, reference_grad
from grait_engine.features.projection import GEN_ROWS, Projector, normalize_rows, precondition
from grait_engine.features.sequences import Batch, Encoded, collate, encode, encode_pair
from grait_engine.features.stage import (
    FeaturesCancelled,
    FeaturesResult,
    SpeedSettings,
    features_inputs_hash,
    run_features,
)
from grait_engine.features.warmup import Warmup, load_warmup, run_warmup, select_warmup_items

__all__ = [
    "GEN_ROWS",
    "Batch",
    "Encoded",
    "FeatureContext",
    "FeaturesCancelled",
    "FeaturesConfig",
    "FeaturesConfigError",
    "FeaturesResult",
    "LoraLayout",
    "Projector",
    "SpeedSettings",
    "Warmup",
    "batched_features",
    "collate",
    "encode",
    "encode_pair",
    "features_inputs_hash",
    "load_warmup",
    "lora_layout",
    "normalize_rows",
    "per_sample_grads",
    "precondition",
    "reference_features",
    "reference_grad",
    "run_features",
    "run_warmup",
    "select_warmup_items",
]
