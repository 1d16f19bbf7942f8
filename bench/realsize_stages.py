"""The other stages of ``bench/realsize.py``, called as ``grait_engine/pipeline/run.py`` calls
them: the choice and open probes, the split (at the median when 0.5 leaves a side empty),
selection, a few steps of training and the evaluation of the tuned model.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from realsize_bench import Bench
from realsize_model import Data

from grait_engine.evaluation.evaluate import evaluate_set
from grait_engine.job_folder import EVAL_DIR
from grait_engine.lora import (
    cast_lora,
    count_lora_parameters,
)
from grait_engine.memory import Batching
from grait_engine.methods import build_examples
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.stage import run_probe
from grait_engine.probe.store import read_probe
from grait_engine.records.item import Item
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.stage import run_selection
from grait_engine.split.stage import load_split, run_split
from grait_engine.training.config import TrainingConfig
from grait_engine.training.loss import Example
from grait_engine.training.stage import run_training

EVAL_RUNS = 3  # init_basic, init_refuse, tuned


def probe_stage(b: Bench, model: Any, tokenizer: Any, data: Data, out: Path) -> dict[str, float]:
    """The choice probe on the pool and the open probe on NQ; returns the correctness."""
    pool = data.mmlu_test[: b.args.items]
    config = ProbeConfig()
    common = {
        "config": config,
        "seed": b.args.seed,
        "model_revision": model.grait_revision,
        "batch_size": b.batch_size,
        "callbacks": b.events.callbacks(),
    }
    b.run(
        "probe (choice, MMLU)",
        lambda: run_probe(model, tokenizer, pool, out / "probe", shots=data.mmlu_dev, **common),
        len(pool),
    )
    nq_pool = data.nq[: b.args.items]
    nq_shots = data.nq[b.args.items : b.args.items + 200]
    b.run(
        "probe (open, NQ)",
        lambda: run_probe(model, tokenizer, nq_pool, out / "probe-nq", shots=nq_shots, **common),
        len(nq_pool),
    )
    b.figures["probe_config"] = config.to_dict()
    _, records = read_probe(out / "probe")
    return {r["id"]: float(r["correctness"]) for r in records}


def split_stage(b: Bench, correctness: dict[str, float], out: Path) -> Any:
    """``run_split`` at 0.5, or at the median correctness if 0.5 leaves a side empty."""
    values = sorted(correctness.values())
    tau = 0.5
    if all(v >= tau for v in values) or all(v < tau for v in values):
        tau = statistics.median(values)
        if all(v >= tau for v in values):  # ties at the median: just above the smallest
            tau = math.nextafter(values[0], math.inf)
        b.figures["split_note"] = f"tau {tau:.4f} (median): 0.5 left one side empty"
    result = b.run("split", lambda: run_split(out / "probe", out / "split", tau), len(values))
    b.figures["split"] = {"tau": tau, "n_ik": result.n_ik, "n_idk": result.n_idk}
    return result


def selection_stage(b: Bench, out: Path) -> dict[str, Any]:
    config = SelectionConfig()
    split = load_split(out / "split")
    n = len(split.ik_ids) + len(split.idk_ids)
    result = b.run(
        "selection",
        lambda: run_selection(
            config, split, out / "features" / "features", out / "select", seed=b.args.seed
        ),
        n,
    )
    b.figures["selection"] = {"n_ik": result.n_ik, "n_idk": result.n_idk, **config.knobs()}
    document = json.loads(result.path.read_text())
    return build_examples(
        "grait", split, config.n_ik, config.n_idk, b.args.seed, selection=document
    )


def training_stage(
    b: Bench, model: Any, tokenizer: Any, pool: list[Item], examples: Any, out: Path
) -> Any:
    """``args.train_steps`` optimiser steps of the default fine-tune; returns the PeftModel."""
    by_id = {item.id: item for item in pool}
    train = [Example(by_id[i], refuse, weight) for i, refuse, weight in examples.entries]
    config = TrainingConfig(max_steps=b.args.train_steps)
    result = b.run(
        "train",
        lambda: run_training(
            model,
            tokenizer,
            train,
            config,
            out / "train",
            seed=b.args.seed,
            model_revision=model.grait_revision,
            callbacks=b.events.callbacks(),
        ),
        len(train),
        unit="examples",
    )
    stage = b.stages["train"]
    times = [stage["start"]] + [e[0] for e in b.events.of("train", stage["start"])]
    steps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    steady = steps[1:] or steps  # the first step also attaches the LoRA and builds AdamW
    per_step = min(len(train), config.batch_size * config.grad_accum)
    b.figures["train"] = {
        "steps": result.steps,
        "step_s": steps,
        "steady_step_s": sum(steady) / len(steady),
        "examples_per_step": per_step,
        "s_per_example": sum(steady) / len(steady) / per_step,
        "lora_r": config.lora_r,
        "n_params": count_lora_parameters(result.model),
        "after_steps_s": stage["seconds"] - (times[-1] - times[0]),  # final checkpoint, adapter
    }
    return result.model


def evaluation_stage(b: Bench, tuned: Any, tokenizer: Any, data: Data, out: Path) -> None:
    """``evaluate_set`` on both test sets with the tuned model, as run.py does."""
    cast_lora(tuned, next(tuned.get_base_model().parameters()).dtype)
    batching = Batching(b.batch_size, "evaluate", b.events.notice)
    for name, items in (("mmlu_val", data.mmlu_val), ("arc_c", data.arc_c)):
        chosen = items[: b.args.eval_items]
        b.run(
            f"evaluate {name}",
            lambda chosen=chosen, name=name: evaluate_set(
                tuned,
                tokenizer,
                chosen,
                out / EVAL_DIR / name,
                tuned_model=tuned,
                batch_size=batching,
                progress=b.events.progress,
            ),
            EVAL_RUNS * len(chosen),
            unit="decodings",
        )
