"""The knowledge probe (METHOD.md stage 1) on a toy world: speed, parity and quality.

For each task type, on the world's training pool (``data/{task}/train.jsonl``):

1. the batched probe (``probe_items``: left-padded, length-sorted batches; for ``open`` one
   prefill per prompt, its KV cache shared by the N samples) on ``--batched-items`` items;
2. the naive reference (``naive_items``: one item at a time, ``generate`` per sample) on the
   first ``--naive-items`` of them;
3. speed in items/s and the ratio, parity on the shared items (letter probabilities within
   1e-4; identical samples), and the AUROC of the batched correctness for ``many`` vs
   ``never`` facts of ``truth.json``.

    .venv/bin/python bench/probe.py [WORLD_DIR] [--tasks open] [--temperature T]
    # default world: the cached small world (built if missing)

Prompt building and tokenisation (``prepare``) are shared and timed separately.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from grait_cli.progress import ProgressBars
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.metrics import auroc
from grait_engine.probe.naive import naive_items
from grait_engine.probe.runner import prepare, probe_items
from grait_engine.records.jsonl import read_items
from grait_engine.split.stage import DEFAULT_TAU
from grait_engine.toyworld.cache import ensure_world


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", nargs="?", help="toy world directory (model/, data/, truth.json)")
    parser.add_argument("--tasks", default="choice,open")
    parser.add_argument("--samples", type=int, default=10, help="N for open items")
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature for open items"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch")
    parser.add_argument("--batched-items", type=int, default=0, help="0: the whole pool")
    parser.add_argument("--naive-items", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shots",
        choices=("none", "pool"),
        default="none",
        help="few-shot examples: none (0-shot, as jobs without a shots "
        "dataset) or from the pool itself",
    )
    return parser.parse_args()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def parity(task: str, batched: list[dict], naive: list[dict]) -> str:
    """Agreement of the batched and naive records of the same items, as one line."""
    if task == "choice":
        worst = max(
            abs(b["probs"][k] - n["probs"][k])
            for b, n in zip(batched, naive, strict=True)
            for k in b["probs"]
        )
        return f"max |p_batched - p_naive| = {worst:.2e} (tolerance 1e-4)"
    pairs = [
        (a, b)
        for x, y in zip(batched, naive, strict=True)
        for a, b in zip(x["samples"], y["samples"], strict=True)
    ]
    same = sum(a == b for a, b in pairs)
    return f"identical samples {same}/{len(pairs)} ({100 * same / len(pairs):.2f}%)"


def quality(records: list[dict], truth: dict) -> str:
    """AUROC of correctness (and certainty) against the ground truth ``known`` (every world)
    and for facts seen many times vs never (the ``classes`` design)."""
    known = [bool(truth[r["id"]]["known"]) for r in records if "known" in truth.get(r["id"], {})]
    lines = []
    if len(known) == len(records) and 0 < sum(known) < len(known):
        lines.append(
            f"AUROC known vs unknown: correctness "
            f"{auroc([r['correctness'] for r in records], known):.4f}, certainty "
            f"{auroc([r['certainty'] for r in records], known):.4f} "
            f"(n_known={sum(known)}, n_unknown={len(known) - sum(known)})"
        )
        # The labels a job's split takes from c at the default tau: idk when c < tau.
        idk = [r["correctness"] < DEFAULT_TAU for r in records]
        idk_unknown = sum(i for i, k in zip(idk, known, strict=True) if not k)
        idk_known = sum(i for i, k in zip(idk, known, strict=True) if k)
        lines.append(
            f"c < {DEFAULT_TAU} (idk at the default tau): {100 * idk_unknown / (len(known) - sum(known)):.1f}% "
            f"of unknown, {100 * idk_known / sum(known):.1f}% of known items"
        )
    kept = [r for r in records if truth.get(r["id"], {}).get("class") in ("many", "never")]
    labels = [truth[r["id"]]["class"] == "many" for r in kept]
    if all(labels) or not any(labels):
        return "\n".join(lines) or "AUROC: needs both many and never items"
    by_class: dict[str, list[float]] = {}
    for r in records:
        by_class.setdefault(truth.get(r["id"], {}).get("class", "?"), []).append(r["correctness"])
    means = ", ".join(
        f"{k} {sum(v) / len(v):.3f} (n={len(v)})" for k, v in sorted(by_class.items())
    )
    return (
        "\n".join(lines)
        + "\n"
        + (
            f"AUROC many vs never: correctness {auroc([r['correctness'] for r in kept], labels):.4f}, "
            f"certainty {auroc([r['certainty'] for r in kept], labels):.4f} "
            f"(n_many={sum(labels)}, n_never={len(labels) - sum(labels)}); mean c: {means}"
        )
    )


def bench_task(model, tokenizer, world: Path, task: str, truth: dict, args) -> None:
    items = read_items(world / "data" / task / "train.jsonl", task)
    if args.batched_items:
        items = items[: args.batched_items]
    config = ProbeConfig(n_samples=args.samples, temperature=args.temperature)
    # Jobs probe 0-shot unless given a shots dataset (METHOD.md); "pool" takes the shots
    # from the pool itself, as jobs did before.
    shots = None if args.shots == "pool" else []
    prepared, prep_s = timed(prepare, model, tokenizer, items, config, shots, args.seed)
    lengths = [len(e) for e in prepared.encoded]
    print(
        f"\n== {task}: {len(items)} items, prompts {min(lengths)}-{max(lengths)} tokens, "
        f"prepare {prep_s:.2f} s"
    )
    everything = range(len(items))
    batched, batched_s = timed(
        probe_items, model, tokenizer, prepared, everything, config, args.seed, args.batch_size
    )
    subset = range(min(args.naive_items, len(items)))
    naive, naive_s = timed(naive_items, model, tokenizer, prepared, subset, config, args.seed)
    batched_rate, naive_rate = len(everything) / batched_s, len(subset) / naive_s
    print(
        f"batched: {len(everything)} items in {batched_s:.2f} s = {batched_rate:.1f} items/s "
        f"(batch {args.batch_size}{f' x N={args.samples}' if task == 'open' else ''})"
    )
    print(f"naive:   {len(subset)} items in {naive_s:.2f} s = {naive_rate:.1f} items/s")
    print(f"speed ratio batched / naive: {batched_rate / naive_rate:.1f}x")
    print(f"parity on {len(subset)} items: {parity(task, batched[: len(subset)], naive)}")
    print(quality(batched, truth))


def main() -> None:
    args = parse_args()
    if args.world:
        world = Path(args.world)
    else:
        with ProgressBars() as bars:
            world = ensure_world(progress=bars.update).root
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(ModelSpec(str(world / "model")))
    truth = json.loads((world / "truth.json").read_text())
    print(
        f"world {world}; torch threads {torch.get_num_threads()}; N = {args.samples}, "
        f"temperature {args.temperature}"
    )
    for task in args.tasks.split(","):
        bench_task(model, tokenizer, world, task, truth, args)


if __name__ == "__main__":
    main()
