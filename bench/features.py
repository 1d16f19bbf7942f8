"""Gradient features (METHOD.md stage 3) on a toy world: speed vs the reference and the floor.

On the world's training pool (``data/{task}/train.jsonl``, tasks joined):

1. warmup: a LoRA fine-tune on the facts ``truth.json`` marks ``many`` (a stand-in for the
   probe's ``c >= 0.99``; at most ``--warmup-items``), keeping the AdamW moments;
2. batched features (``batched_features``: hooks, one forward/backward per batch of
   ``--batch-size`` sequences, groups of ``--group-items`` items projected together; by
   default as many as the stage's memory budget holds, ``SpeedSettings.group_size``) for
   every item, with the gradient and projection parts timed apart;
3. the per-sample reference loop (``reference_features``: one backward per sequence) on the
   first ``--reference-items`` items, and the cosine of its rows with the batched ones;
4. the floor: one plain batched forward+backward (summed LoRA ``.grad``, no per-sample
   gradients, no projection) over exactly the same batches of tokens;
5. the projection done the other ways, on the same preconditioned gradients: ``lut`` (the
   CPU default) and ``dense`` (the same ``P``) in float32 and in bfloat16, and ``fused``
   (the CUDA default, bfloat16) where Triton runs, each timed and compared (min row cosine)
   with the stage's (on a CPU, dense in bfloat16 only with ``--dense-bf16``: it has no fast
   path there and the engine never runs it).

    .venv/bin/python bench/features.py [WORLD_DIR]   # default: the cached small world (built if missing)
    .venv/bin/python bench/features.py --size tiny    # the tiny world (a few minutes to build)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from grait_cli.progress import ProgressBars
from grait_engine.features.compute import FeatureContext, batched_features, reference_features
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.fused import available as fused_available
from grait_engine.features.pergrad import lora_layout, per_sample_grads
from grait_engine.features.projection import Projector, precondition, resolve_projection_dtype
from grait_engine.features.sequences import collate, encode_pair, per_sample_loss
from grait_engine.features.stage import SpeedSettings
from grait_engine.features.warmup import select_warmup_items, train_warmup
from grait_engine.lora import attach_lora, cast_lora
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.jsonl import read_items
from grait_engine.toyworld.cache import ensure_world


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", help="toy world directory (model/, data/, truth.json)")
    parser.add_argument(
        "--size",
        choices=("tiny", "small"),
        default="small",
        help="without WORLD_DIR: the cached toy world of this size (built if missing)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="cache of the toy worlds (~/.cache/grait)"
    )
    parser.add_argument("--tasks", default="open,choice")
    parser.add_argument("--items", type=int, default=0, help="0: the whole pool")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    parser.add_argument(
        "--group-items",
        type=int,
        default=0,
        help="items projected together (0: what the stage's memory budget holds)",
    )
    parser.add_argument("--reference-items", type=int, default=32)
    parser.add_argument("--warmup-items", type=int, default=128)
    parser.add_argument("--dim", type=int, default=8192)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (0: torch default; 1 is stable on a shared machine)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--dense-bf16",
        action="store_true",
        help="also time the dense projection in bfloat16 on a CPU (very slow without native "
        "bfloat16; the engine never runs it)",
    )
    return parser.parse_args()


def groups(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batches_of(ctx: FeatureContext, group: list, batch_size: int) -> list:
    """The batches ``batched_features`` forms for ``group`` (longest first, ans+idk mixed)."""
    pairs = [encode_pair(item, ctx.tokenizer) for item in group]
    sequences = [a for a, _ in pairs] + [b for _, b in pairs]
    sequences.sort(key=lambda s: -len(s.ids))  # longest first, as batched_features
    return [
        collate(sequences[i : i + batch_size], ctx.pad_id, ctx.device)
        for i in range(0, len(sequences), batch_size)
    ]


def other_projectors(ctx: FeatureContext, seed: int, dense_bf16: bool) -> dict[str, Projector]:
    """The projection done the other ways, less the stage's own (``ctx.projector``): ``lut``
    and ``dense`` (the same ``P``) in float32 and bfloat16, and ``fused`` (bfloat16) where
    its Triton kernel runs. ``dense`` in bfloat16 on a CPU only when asked: the engine never
    runs it (CPUs use ``lut``), and without native bfloat16 matrix products it is very slow
    (1320 s against 8 s in float32 on the tiny world, AVX2, one thread)."""
    ways = [(m, t) for m in ("lut", "dense") for t in ("float32", "bfloat16")]
    if fused_available(ctx.device):
        ways.append(("fused", "bfloat16"))
    if ctx.device.type == "cpu" and not dense_bf16:
        ways.remove(("dense", "bfloat16"))
    own = (ctx.projector.method, ctx.projector.dtype)
    return {
        f"{method} {dtype}": Projector(
            ctx.layout.n_params, ctx.projector.d, seed, ctx.device, dtype, method
        )
        for method, dtype in ways
        if (method, getattr(torch, dtype)) != own
    }


def time_parts(
    ctx: FeatureContext, items: list, args, others: dict[str, Projector]
) -> tuple[dict[str, float], int, dict[str, tuple[float, float]]]:
    """Seconds of the parts (``grads``: per-sample gradients, ``precondition``, ``project``:
    the stage's projection, ``plain``: plain fwd+bwd), the tokens, and for each projector of
    ``others``: its seconds on the same preconditioned gradients and the min row cosine
    between its features and the stage projection's."""
    seconds = dict.fromkeys(("grads", "precondition", "project", "plain"), 0.0)
    tokens = 0
    other = {name: [0.0, 1.0] for name in others}
    params = [p for p in ctx.model.parameters() if p.requires_grad]

    for group in groups(items, args.group_items):
        batches = batches_of(ctx, group, args.batch_size)
        tokens += sum(b.n_tokens for b in batches)
        start = time.perf_counter()
        grads = torch.cat([per_sample_grads(ctx.model, b, ctx.layout) for b in batches])
        seconds["grads"] += time.perf_counter() - start
        start = time.perf_counter()
        g = precondition(grads, ctx.exp_avg, ctx.exp_avg_sq, ctx.betas, ctx.eps)
        seconds["precondition"] += time.perf_counter() - start
        start = time.perf_counter()
        rows = ctx.projector.project(g)
        seconds["project"] += time.perf_counter() - start
        for name, projector in others.items():
            start = time.perf_counter()
            their = projector.project(g)  # project() leaves its input as it was
            other[name][0] += time.perf_counter() - start
            other[name][1] = min(other[name][1], (rows * their).sum(1).min().item())
        start = time.perf_counter()
        for batch in batches:
            per_sample_loss(ctx.model, batch).sum().backward()
        seconds["plain"] += time.perf_counter() - start
        for p in params:
            p.grad = None
    return seconds, tokens, {k: (v[0], v[1]) for k, v in other.items()}


def warmed_context(args, world: Path, items: list) -> tuple[FeatureContext, FeaturesConfig, str]:
    """Load the model, run the warmup, build the context; returns a description line too."""
    model, tokenizer = load_model(ModelSpec(str(world / "model")))
    truth = json.loads((world / "truth.json").read_text())
    correct = {i.id: float(truth.get(i.id, {}).get("class") == "many") for i in items}
    config = FeaturesConfig(dim=args.dim, lora_r=args.lora_r, warmup_max_items=args.warmup_items)
    warm, fallback = select_warmup_items(items, correct, config, args.seed)
    peft = attach_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, None, 0)
    start = time.perf_counter()
    m, v, steps = train_warmup(peft, tokenizer, warm, config, args.seed)
    warm_s = time.perf_counter() - start
    # As the stage does: no update follows, so the gradient pass runs the LoRA in the
    # model's dtype (a no-op for a float32 model).
    cast_lora(peft, next(model.parameters()).dtype)
    layout = lora_layout(peft)
    device = next(model.parameters()).device
    # The stage's projection: the config's dtype resolved for the device (auto: float32 on
    # CPUs) and the device's method (lut on CPUs, dense on CUDA).
    dtype = resolve_projection_dtype(config.projection_dtype, device)
    projector = Projector(layout.n_params, config.dim, args.seed, device, dtype)
    ctx = FeatureContext(
        peft,
        tokenizer,
        layout,
        m.to(device),
        v.to(device),
        config.adam_betas,
        config.precondition_eps,
        projector,
        device,
    )
    if not args.group_items:
        speed = SpeedSettings(batch_size=args.batch_size)
        args.group_items = speed.group_size(layout.n_params, projector.row_dtype.itemsize, device)
    line = (
        f"warmup: {len(warm)} items{' (fallback)' if fallback else ''}, {steps} steps, "
        f"{warm_s:.1f} s; LoRA r={config.lora_r} alpha={config.lora_alpha} "
        f"dropout={config.lora_dropout} on {sorted(peft.peft_config['default'].target_modules)}; "
        f"D={layout.n_params} LoRA params, d={projector.d}; projection {projector.method} in "
        f"{dtype} (config {config.projection_dtype!r}); groups of {args.group_items} items"
    )
    return ctx, config, line


def main() -> None:
    args = parse_args()
    if args.world:
        world = Path(args.world)
    else:
        with ProgressBars() as bars:
            world = ensure_world(args.size, cache_dir=args.cache_dir, progress=bars.update).root
    if args.threads:
        torch.set_num_threads(args.threads)
    items = [
        i for t in args.tasks.split(",") for i in read_items(world / "data" / t / "train.jsonl", t)
    ]
    items = items[: args.items] if args.items else items
    print(
        f"world {world}; {len(items)} items ({args.tasks}); torch threads {torch.get_num_threads()}"
    )
    ctx, _config, line = warmed_context(args, world, items)
    print(line)
    with torch.enable_grad():
        start = time.perf_counter()
        outs = [batched_features(ctx, g, args.batch_size) for g in groups(items, args.group_items)]
        batched_s = time.perf_counter() - start
        subset = items[: args.reference_items]
        start = time.perf_counter()
        ref_ans, ref_idk = reference_features(ctx, subset)
        reference_s = time.perf_counter() - start
        others = other_projectors(ctx, args.seed, args.dense_bf16)
        parts, tokens, other = time_parts(ctx, items, args, others)
    ans = torch.cat([a for a, _ in outs])[: len(subset)]
    idk = torch.cat([b for _, b in outs])[: len(subset)]
    cosine = min((ans * ref_ans).sum(1).min().item(), (idk * ref_idk).sum(1).min().item())
    batched_rate, reference_rate = len(items) / batched_s, len(subset) / reference_s
    grad_s, plain_s = parts["grads"], parts["plain"]
    proj_s = parts["precondition"] + parts["project"]
    print(
        f"batched:   {len(items)} items in {batched_s:.2f} s = {batched_rate:.1f} items/s "
        f"(batch {args.batch_size} sequences, groups of {args.group_items} items)"
    )
    print(f"reference: {len(subset)} items in {reference_s:.2f} s = {reference_rate:.1f} items/s")
    print(f"speed ratio batched / reference: {batched_rate / reference_rate:.1f}x (goal >= 5x)")
    print(f"parity on {len(subset)} items: min cosine batched vs reference = {cosine:.6f}")
    print(f"plain batched forward+backward over the same {tokens} tokens: {plain_s:.2f} s")
    print(f"  per-sample gradients (hooks): {grad_s:.2f} s = {grad_s / plain_s:.2f}x plain")
    print(f"  preconditioning: {parts['precondition']:.2f} s")
    own = f"{ctx.projector.method} {str(ctx.projector.dtype).removeprefix('torch.')}"
    print(
        f"  projection to d={ctx.projector.d}, {own + ' (the stage):':<24} "
        f"{parts['project']:7.2f} s"
    )
    for name, (secs, cos) in other.items():
        print(
            f"  projection to d={ctx.projector.d}, {name + ':':<24} {secs:7.2f} s; min cosine "
            f"with the stage's {cos:.6f}"
        )
    if ctx.device.type == "cpu" and not args.dense_bf16:
        print("  (dense bfloat16 skipped on the CPU; --dense-bf16 times it)")
    print(
        f"feature extraction / plain fwd+bwd: {(grad_s + proj_s) / plain_s:.2f}x (goal <= 2x); "
        f"end-to-end batched run / plain: {batched_s / plain_s:.2f}x"
    )


if __name__ == "__main__":
    main()
