"""A small, fast job config on the tiny toy world (for ``load_job_config`` / ``run_job``)."""

from __future__ import annotations

from typing import Any

GRAIT_16 = {"type": "grait", "n_ik": 16, "n_idk": 16}


def tiny_job(world: Any, method: dict[str, Any]) -> dict[str, Any]:
    """A choice job of ``method`` on ``world`` (a ``ToyWorld``): 1-shot probe, small
    features and LoRA, one epoch; a few seconds on the CPU."""
    return {
        "model": str(world.model_dir),
        "task": "choice",
        "training_dataset": str(world.data_path("choice", "train")),
        "eval_datasets": {
            "id": str(world.data_path("choice", "test_id")),
            "ood": str(world.data_path("choice", "test_ood")),
        },
        "method": method,
        "probe": {"choice_shots": 1},
        "features": {"dim": 256, "lora_r": 4, "warmup_max_items": 32},
        "training": {"lora_r": 4, "epochs": 1, "batch_size": 8},
        "seed": 0,
    }
