"""The figures of ``bench/realsize.py``: prompt-length factors of this run's items against the
whole sets, the extrapolation to the full MMLU job, and the printed report (devices, stages,
memory, the features' cost against a plain forward+backward, training, the extrapolation).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import torch
from realsize_bench import Bench
from realsize_features import FEATURES
from realsize_model import FULL_LAYERS, Data, GiB
from realsize_stages import EVAL_RUNS

from grait_engine.features.sequences import encode_pair
from grait_engine.machine import cpu_model
from grait_engine.probe.batching import encode_prompts, probe_prompts
from grait_engine.probe.config import ProbeConfig
from grait_engine.prompts import build_prompt
from grait_engine.records.item import Item

# The full MMLU job the figures are extrapolated to.
FULL = {
    "pool": 14042,  # MMLU test
    "warmup": 1000,  # FeaturesConfig.warmup_max_items: assumes >= 1000 items with c >= 0.99
    "train_examples": 5000 * 3,  # N_ik + N_idk = 5,000 for 3 epochs
    "mmlu_val": 1531,
    "arc_c": 1172,
}
LENGTH_SAMPLE = 1000  # MMLU test items whose prompt lengths stand for the whole pool
PRE_MODEL = ("load datasets", "train tokenizer")  # stages before the model exists


def mean_tokens(tokenizer: Any, texts: Sequence[str]) -> float:
    return sum(len(ids) for ids in encode_prompts(tokenizer, texts)) / max(1, len(texts))


def length_factors(b: Bench, tokenizer: Any, data: Data) -> dict[str, Any]:
    """Mean tokens of this run's pool vs a seeded sample of the whole MMLU test pool: the
    5-shot probe prompts and the features/training sequences (prompt + either target)."""
    pool = data.mmlu_test[: b.args.items]
    rng = random.Random(f"realsize-lengths:{b.args.seed}")
    sample = rng.sample(data.mmlu_test, min(LENGTH_SAMPLE, len(data.mmlu_test)))
    shots = ProbeConfig().choice_shots

    def probe_mean(items: Sequence[Item]) -> float:
        prompts = probe_prompts(items, data.mmlu_dev, shots, "basic", b.args.seed, tokenizer)
        return mean_tokens(tokenizer, prompts)

    def sequence_mean(items: Sequence[Item]) -> float:
        pairs = [encode_pair(item, tokenizer) for item in items]
        return sum(len(a.ids) + len(i.ids) for a, i in pairs) / (2 * len(pairs))

    def eval_mean(items: Sequence[Item]) -> float:
        return mean_tokens(tokenizer, [build_prompt(i, "basic", (), tokenizer) for i in items])

    out = {
        "probe": (probe_mean(pool), probe_mean(sample)),
        "sequence": (sequence_mean(pool), sequence_mean(sample)),
        "eval_mmlu_val": (eval_mean(data.mmlu_val[: b.args.eval_items]), eval_mean(data.mmlu_val)),
        "eval_arc_c": (eval_mean(data.arc_c[: b.args.eval_items]), eval_mean(data.arc_c)),
    }
    return {
        key: {"run": run, "full": full, "factor": full / run} for key, (run, full) in out.items()
    }


def extrapolate(b: Bench) -> dict[str, float]:
    """Seconds of each stage of the full MMLU job, from this run's per-item rates.

    Probe, warmup, the gradient part of the features and training scale with the mean
    sequence length (factors from ``length_factors``); the projection with the number of
    group passes at the group size the budget gives here; evaluation and selection per item.
    """
    s, f, lengths = b.stages, b.figures["features"], b.figures["lengths"]
    n = b.args.items
    probe = s["probe (choice, MMLU)"]["seconds"] / n * lengths["probe"]["factor"]
    # Warmup steps are LoRA fine-tune steps like training's (fwd+bwd+AdamW over the same
    # targets): read from the training stage's steady steps, since the stage's own warmup
    # time here also holds one-off work (saving the adapter and moments, first-call setup).
    warm_per_item = b.figures["train"]["s_per_example"]
    grad_per_item = max(0.0, f["pass_s"] - f["projection_s"]) / n
    fit, group = f["projection_fit"], max(1, int(f["full_group_items"]))
    passes = math.ceil(FULL["pool"] / group)
    projection = passes * fit["fixed_s"] + 2 * FULL["pool"] * fit["per_row_s"]
    seq = lengths["sequence"]["factor"]
    estimate = {
        "probe": FULL["pool"] * probe,
        "features warmup": FULL["warmup"] * warm_per_item * seq,
        "features gradients": FULL["pool"] * grad_per_item * seq,
        "features projection": projection,
        "selection": s["selection"]["seconds"] * FULL["pool"] / n,
        "train": FULL["train_examples"] * b.figures["train"]["s_per_example"] * seq,
    }
    for name in ("mmlu_val", "arc_c"):
        stage = s[f"evaluate {name}"]
        estimate[f"evaluate {name}"] = FULL[name] * EVAL_RUNS * stage["seconds"] / stage["count"]
    estimate["total"] = sum(estimate.values())
    return estimate


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def gib(value: float) -> str:
    return f"{value / GiB:.2f}"


def report(b: Bench, model_size: int) -> float:
    """Print the tables; returns features/fwd+bwd."""
    import transformers

    a, f, s, n = b.args, b.figures["features"], b.stages, b.args.items
    dtype = str(b.dtype).removeprefix("torch.")
    print()
    print(
        f"device    {b.device} ({device_name(b.device)}), cpu capability "
        f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} torch threads; "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"model     Llama-3-8B shape, {a.layers} layer(s), random weights, {dtype}: "
        f"{b.figures['n_model_params']:,} parameters = {gib(model_size)} GiB"
    )
    probe = b.figures["probe_config"]
    print(
        f"inputs    pool: the first {n} MMLU test items (open probe: {n} NQ dev items); "
        f"{a.eval_items} items each of MMLU val and ARC-c test; batch size "
        f"{b.batch_size}"
    )
    print(
        f"probe     ProbeConfig defaults: {probe['choice_shots']}-shot choice (MMLU dev "
        f"shots), {probe['open_shots']}-shot open, N={probe['n_samples']} samples of up to "
        f"{probe['max_new_tokens']} tokens"
    )
    split, sel = b.figures["split"], b.figures["selection"]
    note = f" ({b.figures['split_note']})" if "split_note" in b.figures else ""
    print(
        f"split     tau {split['tau']:.4g}: {split['n_ik']} ik / {split['n_idk']} idk{note}; "
        f"selection ({sel['variant']}, budget {sel['n_ik']}+{sel['n_idk']})"
    )
    print()
    kind = "CUDA max allocated" if b.device.type == "cuda" else "peak RSS"
    header = (
        f"{'stage':<22} {'count':>15} {'seconds':>9} {'per second':>11} "
        f"{kind + ' GiB':>17} {'above model':>12}"
    )
    print(header)
    print("-" * len(header))
    for name, st in s.items():
        count = f"{st['count']} {st['unit']}"
        above = gib(st["peak_bytes"] - model_size) if name not in PRE_MODEL else ""
        print(
            f"{name:<22} {count:>15} {st['seconds']:>9.2f} {st['per_s']:>11.3f} "
            f"{gib(st['peak_bytes']):>17} {above:>12}"
        )
    reset = "" if b.memory.resettable else " (not reset between stages: cumulative)"
    print(
        f"memory: {kind} per stage{reset}; overall {gib(b.memory.overall)} GiB = one model "
        f"copy {gib(model_size)} GiB + {gib(b.memory.overall - model_size)} GiB; features "
        f"budget {gib(b.figures['features_budget_bytes'])} GiB (half the free memory before "
        f"the stage)"
    )
    print()
    ref = s["fwd+bwd reference"]["seconds"] / n
    grad = max(0.0, f["pass_s"] - f["projection_s"])
    per_item = f["pass_s"] / n
    row_bytes = 2 if f["projection_dtype"] == "bfloat16" else 4
    buffer = 2 * max(f["groups"]) * f["n_params"] * row_bytes
    print(
        f"features  LoRA r={FEATURES.lora_r} alpha={FEATURES.lora_alpha:g} dropout "
        f"{FEATURES.lora_dropout:g} on {','.join(FEATURES.target_modules or ())}: "
        f"D={f['n_params']:,}, d={f['d']}; projection {f['projection_method']} in "
        f"{f['projection_dtype']}; groups of items {f['groups']} (largest gradient buffer "
        f"{gib(buffer)} GiB)"
    )
    fallback = ", fallback: no item has c >= 0.99" if f["warmup_fallback"] else ""
    print(
        f"  warmup                          {f['warmup_s']:8.2f} s  {f['warmup_items']} items"
        f"{fallback}, {f['warmup_steps']} step(s): {f['warmup_s'] / f['warmup_items']:.3f} "
        f"s/item (attaching and saving the adapter included)"
    )
    print(
        f"  gradients+precondition+project  {f['pass_s']:8.2f} s  {per_item:.3f} s/item "
        f"({n / f['pass_s']:.3f} items/s)"
    )
    print(
        f"    projection (stage's calls)    {f['projection_s']:8.2f} s  "
        f"{100 * f['projection_s'] / f['pass_s']:.0f}% ({len(f['projection_calls'])} "
        f"call(s))"
    )
    print(f"    per-sample gradients, rest    {grad:8.2f} s  {100 * grad / f['pass_s']:.0f}%")
    fit = f["projection_fit"]
    points = ", ".join(
        f"{rows} rows {p['seconds']:.2f} s ({p['timed_on']})" for rows, p in fit["points"].items()
    )
    print(
        f"    projection fit: {fit['fixed_s']:.3f} s per pass over P + "
        f"{1000 * fit['per_row_s']:.2f} ms per row, from {points} (linear between them: "
        f"{fit['predicted_stage_s']:.2f} s for the stage's calls, measured "
        f"{f['projection_s']:.2f} s)"
    )
    print(
        f"  plain batched fwd+bwd           {s['fwd+bwd reference']['seconds']:8.2f} s  "
        f"{ref:.3f} s/item ({f['reference_batches']} batches, {f['reference_tokens']} "
        f"tokens; summed .grad of the same LoRA)"
    )
    ratio = per_item / ref
    print(
        f"  features / fwd+bwd              {ratio:8.2f}x (per-sample gradients alone "
        f"{grad / n / ref:.2f}x)"
    )
    t = b.figures["train"]
    steps = ", ".join(f"{x:.2f}" for x in t["step_s"])
    print(
        f"train     LoRA r={t['lora_r']} ({t['n_params']:,} parameters), {t['steps']} steps "
        f"of {t['examples_per_step']} examples, step seconds [{steps}]: "
        f"{t['steady_step_s']:.2f} s/step{' after the first' if len(t['step_s']) > 1 else ''}"
        f" = {1 / t['s_per_example']:.3f} examples/s"
    )
    print()
    print(
        f"mean tokens, this run vs the whole set (MMLU test: a seeded sample of "
        f"{LENGTH_SAMPLE} items)"
    )
    for key, value in b.figures["lengths"].items():
        print(f"  {key:<14} {value['run']:8.1f} vs {value['full']:8.1f}  x{value['factor']:.2f}")
    print()
    print(
        f"EXTRAPOLATION to the full MMLU job, from this run's device ({device_name(b.device)}"
        f") and {a.layers} layer(s) in {dtype}:"
    )
    print(
        f"  probe {FULL['pool']:,} items; features {FULL['pool']:,} items after a warmup on "
        f"{FULL['warmup']} (assumed: at least that many items with c >= 0.99; the cap); "
        f"train {FULL['train_examples']:,} examples (5,000 x 3 epochs); evaluate MMLU val "
        f"{FULL['mmlu_val']:,} and ARC-c {FULL['arc_c']:,} items x {EVAL_RUNS} "
        f"decodings."
    )
    print(
        f"  Probe, warmup, gradients and training are scaled by the length factors above; "
        f"the projection by passes of {f['full_group_items']} items (the group the budget "
        f"gives here) with the fit; selection and evaluation per item."
    )
    scale = FULL_LAYERS / a.layers
    rough = a.layers < FULL_LAYERS
    head = f"  {'stage':<22} {'minutes':>9}"
    if rough:
        head += f" {f'x{scale:g} layers (rough)':>22}"
    print(head)
    for name, seconds in b.figures["extrapolation"].items():
        line = f"  {name:<22} {seconds / 60:>9.1f}"
        if rough:
            line += f" {seconds * scale / 60:>22.1f}"
        print(line)
    if rough:
        print(
            f"  (rough: each stage times {FULL_LAYERS}/{a.layers}, as if it were all per-layer "
            f"work; the embedding and output layer are not, so decoding stages are "
            f"overstated)"
        )
    if b.events.notices:
        print("notices: " + "; ".join(b.events.notices))
    return ratio
