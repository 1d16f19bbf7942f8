"""Gradient features (METHOD.md stage 3): warmup LoRA, batched per-sample Adam-preconditioned
projected gradients, written in resumable shards (``features_store`` format).

``config`` is torch-free and so is this ``__init__``: the torch parts load on first use."""

from __future__ import annotations

from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.lazy import lazy_exports

_LAZY = {
    "FeatureContext": "grait_engine.features.compute",
    "batched_features": "grait_engine.features.compute",
    "reference_features": "grait_engine.features.compute",
    "LoraLayout": "grait_engine.features.pergrad",
    "lora_layout": "grait_engine.features.pergrad",
    "module_grads": "grait_engine.features.pergrad",
    "per_sample_grads": "grait_engine.features.pergrad",
    "reference_grad": "grait_engine.features.pergrad",
    "WORD_BITS": "grait_engine.features.projection",
    "Projector": "grait_engine.features.projection",
    "normalize_rows": "grait_engine.features.projection",
    "precondition": "grait_engine.features.projection",
    "resolve_projection_dtype": "grait_engine.features.projection",
    "sign_words": "grait_engine.features.projection",
    "Batch": "grait_engine.features.sequences",
    "Encoded": "grait_engine.features.sequences",
    "collate": "grait_engine.features.sequences",
    "encode": "grait_engine.features.sequences",
    "encode_pair": "grait_engine.features.sequences",
    "FeaturesCancelled": "grait_engine.features.stage",
    "FeaturesResult": "grait_engine.features.stage",
    "SpeedSettings": "grait_engine.features.stage",
    "features_inputs_hash": "grait_engine.features.stage",
    "run_features": "grait_engine.features.stage",
    "Warmup": "grait_engine.features.warmup",
    "load_warmup": "grait_engine.features.warmup",
    "run_warmup": "grait_engine.features.warmup",
    "select_warmup_items": "grait_engine.features.warmup",
}

__all__ = ["FeaturesConfig", "FeaturesConfigError", *_LAZY]

__getattr__ = lazy_exports(__name__, _LAZY)
