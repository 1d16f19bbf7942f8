"""Gradient features (METHOD.md stage 3) on a toy world: speed vs the reference and the floor.

On the world's training pool (``data/{task}/train.jsonl``, tasks joined):

1. warmup: a LoRA fine-tune on the facts ``truth.json`` marks ``many`` (a stand-in for the
   probe's ``c >= 0.99``; at most ``--warmup-items``), keeping the AdamW moments;
2. batched features (``batched_features``: hooks, one forward/backward per batch of
   ``--batch-size`` sequences, groups of ``--group-items`` items projected together) for
   every item, with the gradient and projection parts timed apart;
3. the per-sample reference loop (``reference_features``: one backward per sequence) on the
   first ``--reference-items`` items, and the cosine of its rows with the batched ones;
4. the floor: one plain batched forward+backward (summed LoRA ``.grad``, no per-sample
   gradients, no projection) over exactly the same batches of tokens.

    .venv/bin/python bench/features.py [WORLD_DIR]   # default: the cached small world (built if missing)
"""

from __future__ import annotations

import os
import sys

# bench/ holds select.py, which shadows the stdlib module subprocess needs: drop this folder
# from the import path and put the repository root (for grait_engine) in its place.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from grait_cli.demo import ensure_world  # noqa: E402
from grait_engine.features import (  # noqa: E402
    FeatureContext,
    FeaturesConfig,
    Projector,
    batched_features,
    collate,
    encode_pair,
    lora_layout,
    per_sample_grads,
    precondition,
    reference_features,
    select_warmup_items,
)
from grait_engine.features.sequences import per_sample_loss  # noqa: E402
from grait_engine.features.warmup import train_warmup  # noqa: E402
from grait_engine.lora import attach_lora  # noqa: E402
from grait_engine.modeling import ModelSpec, load_model  # noqa: E402
from grait_engine.records import read_items  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", help="toy world directory (model/, data/, truth.json)")
    parser.add_argument("--tasks", default="open,choice")
    parser.add_argument("--items", type=int, default=0, help="0: the whole pool")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per batch")
    parser.add_argument("--group-items", type=int, default=64, help="items projected together")
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
    return parser.parse_args()


def groups(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def batches_of(ctx: FeatureContext, group: list, batch_size: int) -> list:
    """The batches ``batched_features`` forms for ``group`` (length-sorted, ans+idk mixed)."""
    pairs = [encode_pair(item, ctx.tokenizer) for item in group]
    sequences = [a for a, _ in pairs] + [b for _, b in pairs]
    sequences.sort(key=lambda s: len(s.ids))
    return [
        collate(sequences[i : i + batch_size], ctx.pad_id, ctx.device)
        for i in range(0, len(sequences), batch_size)
    ]


def time_parts(
    ctx: FeatureContext, items: list, args, exact: Projector
) -> tuple[float, float, float, int, float, float]:
    """Seconds of (per-sample gradients, precondition+projection, plain fwd+bwd), tokens,
    and for the all-float32 projection ``exact``: its seconds and the min cosine between
    the stage's (default) projection and it."""
    grad_s = proj_s = plain_s = exact_s = 0.0
    tokens, cosine = 0, 1.0
    params = [p for p in ctx.model.parameters() if p.requires_grad]
    for group in groups(items, args.group_items):
        batches = batches_of(ctx, group, args.batch_size)
        tokens += sum(b.n_tokens for b in batches)
        start = time.perf_counter()
        grads = torch.cat([per_sample_grads(ctx.model, b, ctx.layout) for b in batches])
        grad_s += time.perf_counter() - start
        start = time.perf_counter()
        g = precondition(grads, ctx.exp_avg, ctx.exp_avg_sq, ctx.betas, ctx.eps)
        rows = ctx.projector.project(g)
        proj_s += time.perf_counter() - start
        start = time.perf_counter()
        exact_rows = exact.project(g)
        exact_s += time.perf_counter() - start
        cosine = min(cosine, (rows * exact_rows).sum(1).min().item())
        start = time.perf_counter()
        for batch in batches:
            per_sample_loss(ctx.model, batch).sum().backward()
        plain_s += time.perf_counter() - start
        for p in params:
            p.grad = None
    return grad_s, proj_s, plain_s, tokens, exact_s, cosine


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
    layout = lora_layout(peft)
    # The stage's projection (the config default, bfloat16 products with float32 sums).
    projector = Projector(layout.n_params, config.dim, args.seed, dtype=config.projection_dtype)
    ctx = FeatureContext(
        peft, tokenizer, layout, m, v, config.adam_betas, config.precondition_eps, projector,
        torch.device("cpu"),
    )  # fmt: skip
    line = (
        f"warmup: {len(warm)} items{' (fallback)' if fallback else ''}, {steps} steps, "
        f"{warm_s:.1f} s; LoRA r={config.lora_r} alpha={config.lora_alpha} "
        f"dropout={config.lora_dropout} on {sorted(peft.peft_config['default'].target_modules)}; "
        f"D={layout.n_params} LoRA params, d={projector.d}"
    )
    return ctx, config, line


def main() -> None:
    args = parse_args()
    world = Path(args.world) if args.world else ensure_world().root
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
        ctx.projector.project(torch.zeros(1, ctx.layout.n_params))  # fill the P cache, untimed
        start = time.perf_counter()
        outs = [batched_features(ctx, g, args.batch_size) for g in groups(items, args.group_items)]
        batched_s = time.perf_counter() - start
        subset = items[: args.reference_items]
        start = time.perf_counter()
        ref_ans, ref_idk = reference_features(ctx, subset)
        reference_s = time.perf_counter() - start
        exact = Projector(ctx.layout.n_params, ctx.projector.d, args.seed, dtype="float32")
        exact.project(torch.zeros(1, ctx.layout.n_params))  # fill its cache, untimed
        grad_s, proj_s, plain_s, tokens, exact_s, cos = time_parts(ctx, items, args, exact)
    ans = torch.cat([a for a, _ in outs])[: len(subset)]
    idk = torch.cat([b for _, b in outs])[: len(subset)]
    cosine = min((ans * ref_ans).sum(1).min().item(), (idk * ref_idk).sum(1).min().item())
    batched_rate, reference_rate = len(items) / batched_s, len(subset) / reference_s
    print(f"batched:   {len(items)} items in {batched_s:.2f} s = {batched_rate:.1f} items/s "
          f"(batch {args.batch_size} sequences, groups of {args.group_items} items)")  # fmt: skip
    print(f"reference: {len(subset)} items in {reference_s:.2f} s = {reference_rate:.1f} items/s")
    print(f"speed ratio batched / reference: {batched_rate / reference_rate:.1f}x (goal >= 5x)")
    print(f"parity on {len(subset)} items: min cosine batched vs reference = {cosine:.6f}")
    print(f"plain batched forward+backward over the same {tokens} tokens: {plain_s:.2f} s")
    print(f"  per-sample gradients (hooks): {grad_s:.2f} s = {grad_s / plain_s:.2f}x plain")
    dtype = ctx.projector.dtype
    print(f"  precondition + projection to d={ctx.projector.d} ({dtype}, the default): "
          f"{proj_s:.2f} s")  # fmt: skip
    print(f"  the same all in float32: {exact_s:.2f} s; min cosine between them {cos:.6f}")
    print(f"feature extraction / plain fwd+bwd: {(grad_s + proj_s) / plain_s:.2f}x (goal <= 2x), "
          f"{(grad_s + exact_s) / plain_s:.2f}x with the float32 projection; end-to-end batched "
          f"run / plain: {batched_s / plain_s:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
