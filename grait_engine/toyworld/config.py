"""Configuration of a toy knowledge world: its size presets and everything that shapes it.

The config is hashed to name the cache directory, so two builds with the same config and
seed reuse one world. Change ``VERSION`` when the generator changes in a way that alters the
output for the same config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

VERSION = 3
SIZES = ("tiny", "small")


@dataclass(frozen=True)
class ToyWorldConfig:
    """Everything that determines a toy world (with ``seed``).

    World: ``n_people`` people, each with one value per relation; a fact's frequency class
    is ``many`` (seen ``many_min..many_max`` times), ``rare`` (1-2 times) or ``never``.
    Corpus: each occurrence of a fact is a statement, an open QA prompt or a choice QA prompt.
    Model: a Llama-style causal LM with the given shape, trained for one pass over the corpus.
    """

    size: str = "small"
    seed: int = 0
    # world
    n_people: int = 200
    p_many: float = 0.5
    p_rare: float = 0.15
    many_min: int = 120
    many_max: int = 180
    id_test_share: float = 0.25
    # corpus: share of occurrences rendered as statements, open QA, choice QA (rest)
    p_statement: float = 0.4
    p_open: float = 0.3
    p_shots: float = 0.2
    max_shots: int = 5
    p_refuse_style: float = 0.5
    p_refusal_target: float = 0.03
    # tokenizer and model
    vocab_size: int = 2048
    hidden_size: int = 192
    n_layers: int = 4
    n_heads: int = 6
    intermediate_size: int = 512
    block_size: int = 320
    # training
    batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.05
    epochs: int = 1
    # Torch threads of the build. Fixed, because float reductions (and so the trained
    # weights and every figure of the world) depend on it; 0 uses torch's default.
    n_threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}


def preset(size: str, seed: int = 0) -> ToyWorldConfig:
    """The config of a named size: ``tiny`` (tests, <90 s) or ``small`` (demo, <10 min)."""
    if size == "small":
        return ToyWorldConfig(size="small", seed=seed)
    if size == "tiny":
        return replace(
            ToyWorldConfig(size="tiny", seed=seed),
            n_people=40,
            many_min=100,
            many_max=150,
            vocab_size=1024,
            hidden_size=128,
            n_layers=4,
            n_heads=4,
            intermediate_size=384,
            block_size=256,
            lr=4e-3,
            warmup_steps=20,
        )
    raise ValueError(f"unknown toy world size {size!r}: choose one of {', '.join(SIZES)}")
