"""Configuration of a toy knowledge world: its size presets and everything that shapes it.

The config is hashed to name the cache directory, so two builds with the same config and
seed reuse one world. Change ``VERSION`` when the generator changes in a way that alters the
output for the same config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

VERSION = 7  # 7: known also needs p(value) >= 1/2 or above the value's luck ceiling
SIZES = ("tiny", "small", "medium")


@dataclass(frozen=True)
class ToyWorldConfig:
    """Everything that determines a toy world (with ``seed``).

    World: ``n_people`` people, each with one value per relation of the ``design``
    (``world.py``). ``classes``: a fact's frequency class is ``many`` (seen
    ``many_min..many_max`` times), ``rare`` (1-2 times) or ``never``. ``popularity``: the
    ``pop_*``, ``fact_log2_sd``, ``max_exposure`` and ``*conflict*`` knobs shape exposure.
    Splits: ``id_test_share`` (and ``id_val_share``) of the in-domain facts go to
    ``test_id`` (``val``); ``ood_val_share`` of the out-of-domain facts to ``val_ood``.
    Corpus: each occurrence of a fact is a statement, an open QA prompt or a choice QA prompt.
    Model: a Llama-style causal LM with the given shape, trained for one pass over the corpus.
    """

    size: str = "small"
    seed: int = 0
    design: str = "classes"  # classes | popularity
    # world
    n_people: int = 200
    p_many: float = 0.5
    p_rare: float = 0.15
    many_min: int = 120
    many_max: int = 180
    id_test_share: float = 0.25
    id_val_share: float = 0.0
    ood_val_share: float = 0.0
    # popularity design: log2 of a person's mean sightings per fact ~ N(mean, sd); per-fact
    # log2 noise; a cap; the share of facts also seen with a fixed wrong value, and the
    # range of the share of their sightings that carry it.
    pop_log2_mean: float = 2.5
    pop_log2_sd: float = 2.5
    fact_log2_sd: float = 0.75
    max_exposure: int = 128
    p_conflict: float = 0.1
    conflict_share_range: tuple[float, float] = (0.2, 0.5)
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
    """The config of a named size: ``tiny`` (tests, <90 s), ``small`` (demo, <10 min) or
    ``medium`` (the method benchmark: the ``popularity`` design, a 3,000-item pool, test sets
    of 1,500 and validation splits of 500 per task type; built in under 30 min on one thread).
    """
    if size == "medium":
        # Written down before any method was compared on it (README "Toy knowledge world"):
        # 1,000 people x 7 relations; the corpus mixes more statements and fewer few-shot
        # prompts than the small world, so that ~18 sightings per fact fit the time budget.
        return replace(
            ToyWorldConfig(size="medium", seed=seed),
            design="popularity",
            n_people=1000,
            id_test_share=0.3,
            id_val_share=0.1,
            ood_val_share=0.25,
            p_statement=0.5,
            p_open=0.25,
            p_shots=0.1,
        )
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
