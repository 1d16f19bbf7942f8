"""Small item pools and a warmed-up tiny model for the features tests."""

from __future__ import annotations

from pathlib import Path

import torch

from grait_engine.features.compute import FeatureContext
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.pergrad import lora_layout
from grait_engine.features.projection import Projector
from grait_engine.lora import attach_lora
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.item import Item

QUESTIONS = (
    "What is the capital of France?",
    "Who wrote Hamlet?",
    "How many legs does a spider have?",
    "Where does the river flow to, past the mountain and over the valley?",
    "Who?",
)


def mixed_items(n: int) -> list[Item]:
    """``n`` items, open and choice, of clearly different lengths (so batches pad)."""
    items = []
    for k in range(n):
        question = QUESTIONS[k % len(QUESTIONS)] + " again" * (k % 3)
        if k % 3 == 2:
            choices = {"A": "Paris", "B": "Rome", "C": "eight", "D": "Berlin"}
            items.append(Item(id=f"c{k}", question=question, choices=choices, answer="B"))
        else:
            answer = ("William Shakespeare", "eight", "the sea")[k % 3] + " and more" * (k % 2)
            items.append(Item(id=f"o{k}", question=question, answers=(answer,)))
    return items


def correctness_of(items: list[Item]) -> dict[str, float]:
    """Half the items known for sure (c = 1.0), the rest not (c = 0.2)."""
    return {item.id: 1.0 if k % 2 == 0 else 0.2 for k, item in enumerate(items)}


def random_lora_context(model_dir: Path, seed: int = 0, dim: int = 8192) -> FeatureContext:
    """The tiny model with a random (non-zero) rank-4 LoRA and random positive moments.

    Random ``lora_B`` makes the ``lora_A`` gradients non-zero, which a fresh adapter's are not.
    """
    model, tokenizer = load_model(ModelSpec(str(model_dir)))
    peft_model = attach_lora(model, 4, 8.0, 0.0, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    peft_model.eval()
    layout = lora_layout(peft_model)
    exp_avg = torch.randn(layout.n_params, generator=generator) * 1e-3
    exp_avg_sq = torch.rand(layout.n_params, generator=generator) * 1e-6
    config = FeaturesConfig()
    projector = Projector(layout.n_params, dim, seed)
    return FeatureContext(
        peft_model,
        tokenizer,
        layout,
        exp_avg,
        exp_avg_sq,
        config.adam_betas,
        config.precondition_eps,
        projector,
        torch.device("cpu"),
    )
