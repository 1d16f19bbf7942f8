"""What GRAIT's selection picks, measured against the toy world's ground truth.

Reads the probe split and gradient features of finished ``bench/methods.py`` jobs (their
``stages.json`` names the stage-cache folders) and, for each job, re-runs the selection
stage in memory (no training) for every selection variant. The truth (``meta.known``,
``meta.relation``, ``meta.seen`` of the training items) is used only to describe the
picks, never as an input. Printed and written (``--json``) per (task, world, seed):

- ``pool``: the idk pool's size, known share, and relation shares;
- ``variants[v]``: the picked items' known share (refusal targets the base model does in
  fact know: the over-refusal drivers), their mean exposure, the largest relation's share and
  the relation entropy (1.0: spread like the pool);
- ``scores``: AUROC against ``known`` over the idk pool of the scalar signals the method
  uses (the greedy's start score, alpha, the probe's correctness) and of the answer
  feature's cosine to the mean answer feature of the ik picks;
- ``linear_probe``: cross-validated AUROC of a logistic regression on F_idk and on F_ans
  (whole pool, known vs unknown): do the features separate knowledge at all?

Usage::

    .venv/bin/python bench/selection_analysis.py --work /tmp/grait-bench \\
        --worlds-dir /tmp/bw --size medium [--tasks choice open] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from grait_engine.features_store import FeatureStore
from grait_engine.job_folder import REPORT_FILE, read_report, read_stages
from grait_engine.pipeline.knobs import JobKnobs
from grait_engine.probe.metrics import auroc
from grait_engine.records.jsonl import read_items
from grait_engine.selection.config import VARIANTS
from grait_engine.selection.ik import select_ik
from grait_engine.selection.inputs import PoolSplit
from grait_engine.selection.pool import StorePool, group_sums
from grait_engine.selection.select import compute_selection
from grait_engine.split.stage import load_split

JOB_NAME = "{task}-w{world}-s{seed}-grait"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="bench/methods.py --work folder")
    parser.add_argument("--worlds-dir", type=Path, required=True)
    parser.add_argument("--size", default="medium")
    parser.add_argument("--worlds", type=int, nargs="+", default=[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", nargs="+", default=["choice", "open"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the picks' profile")
    return parser.parse_args(argv)


def truth_of(world_dir: Path, task: str) -> dict[str, dict[str, Any]]:
    """``{item id: meta}`` of the world's training pool (``known``, ``relation``, ``seen``)."""
    return {
        item.id: dict(item.meta or {})
        for item in read_items(world_dir / "data" / task / "train.jsonl", task)
    }


def pick_profile(
    ids: list[str], truth: dict[str, dict[str, Any]], pool_relations: Counter
) -> dict[str, float]:
    """Known share, mean exposure, largest relation share and relation entropy (normalised by
    the pool's entropy) of the items ``ids``."""
    relations = Counter(truth[i]["relation"] for i in ids)
    shares = [n / len(ids) for n in relations.values()]
    entropy = -sum(p * math.log(p) for p in shares if p > 0)
    pool_total = sum(pool_relations.values())
    pool_entropy = -sum(n / pool_total * math.log(n / pool_total) for n in pool_relations.values())
    return {
        "n": len(ids),
        "known_share": sum(bool(truth[i]["known"]) for i in ids) / len(ids),
        "mean_seen": sum(truth[i]["seen"] for i in ids) / len(ids),
        "top_relation_share": max(shares),
        "relation_entropy": entropy / pool_entropy if pool_entropy > 0 else 1.0,
    }


def fit_logistic(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (d,), bias (1,)) of an L2-regularised logistic regression of ``y`` (n,) 0/1
    on ``x`` (n, d) float64, fitted with L-BFGS."""
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=100)
    target = y.to(torch.float64)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss = loss + 1e-3 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def linear_probe_auroc(
    features: torch.Tensor, labels: torch.Tensor, folds: int = 2, seed: int = 0
) -> float:
    """Mean held-out AUROC of ``fit_logistic`` (``features`` (n, d), ``labels`` (n,) 0/1),
    ``folds``-fold cross-validation with a seeded shuffle."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    results = []
    for k in range(folds):
        test = order[k::folds]
        train = torch.cat([order[j::folds] for j in range(folds) if j != k])
        weight, bias = fit_logistic(features[train], labels[train])
        scores = (features[test] @ weight + bias).tolist()
        results.append(auroc(scores, [bool(v) for v in labels[test].tolist()]))
    return sum(results) / len(results)


def analyse_job(
    job_dir: Path, truth: dict[str, dict[str, Any]], variants: list[str], seed: int
) -> dict[str, Any]:
    """The figures of one finished grait job (module doc)."""
    stages = read_stages(job_dir)
    split = load_split(stages["split"])
    store = FeatureStore.open(Path(stages["features"]) / "features")
    # The job's own selection settings (a grait job always has them).
    base = JobKnobs.from_dict(read_report(job_dir)["job"]["config"]).selection
    assert base is not None, f"{job_dir} is not a grait job"
    idk = list(split.idk_ids)
    pool_relations = Counter(truth[i]["relation"] for i in idk)
    out: dict[str, Any] = {
        "pool": {**pick_profile(idk, truth, pool_relations), "relations": dict(pool_relations)},
        "n_ik_pool": len(split.ik_ids),
        "variants": {},
    }
    for variant in variants:
        outcome = compute_selection(replace(base, variant=variant), split, store, seed=seed)
        profile = pick_profile(list(outcome.idk_ids), truth, pool_relations)
        profile["weighted_known_share"] = float(
            sum(
                w
                for i, w in zip(outcome.idk_ids, outcome.weights.tolist(), strict=True)
                if truth[i]["known"]
            )
            / outcome.weights.sum()
        )
        out["variants"][variant] = profile
    out["scores"] = score_aurocs(store, split, truth, base.n_ik)
    every = list(split.ik_ids) + idk
    rows = store.rows_of(every)
    labels = torch.tensor([bool(truth[i]["known"]) for i in every], dtype=torch.int64)
    out["linear_probe"] = {
        name: linear_probe_auroc(store.gather(name, rows, dtype=torch.float64), labels)
        for name in ("idk", "ans")
    }
    return out


def score_aurocs(
    store: FeatureStore, split: PoolSplit, truth: dict[str, dict[str, Any]], n_ik: int
) -> dict[str, float]:
    """AUROC against ``known`` over the idk pool of each scalar signal (module doc)."""
    # The ik picks exactly as the stage makes them: rows ascending, then the top n_ik by c_i.
    ik_rows, order = torch.sort(store.rows_of(split.ik_ids))
    correctness = torch.tensor(split.ik_correctness, dtype=torch.float64)[order]
    ik_sel = ik_rows[select_ik(correctness, n_ik)]
    idk_rows, _ = torch.sort(store.rows_of(split.idk_ids))
    ids = [store.ids[r] for r in idk_rows.tolist()]
    known = [bool(truth[i]["known"]) for i in ids]
    (answer_sum,), _ = group_sums(store, "ans", [ik_sel])
    (ik_idk_sum, idk_sum), _ = group_sums(store, "idk", [ik_rows, idk_rows])
    pool_idk = StorePool(store, "idk", idk_rows)
    pool_ans = StorePool(store, "ans", idk_rows)
    greedy_start = pool_idk.project(answer_sum[:, None])[:, 0]
    alpha = pool_idk.project((ik_idk_sum / len(ik_rows) - idk_sum / len(idk_rows))[:, None])[:, 0]
    answer_cos = pool_ans.project((answer_sum / answer_sum.norm())[:, None])[:, 0]
    return {
        "greedy_start": auroc(greedy_start.tolist(), known),
        "alpha": auroc(alpha.tolist(), known),
        "answer_cos_to_ik_answers": auroc(answer_cos.tolist(), known),
    }


def plot_profiles(results: dict[str, Any], path: Path) -> None:
    """One panel per task: known share and largest-relation share of the picks per variant
    (mean over the runs, the idk pool as the first bar), written as a PNG."""
    from matplotlib.figure import Figure

    tasks = sorted({key.split("-")[0] for key in results})
    figure = Figure(figsize=(5.5 * len(tasks), 3.6))
    for n, task in enumerate(tasks):
        runs = [v for k, v in results.items() if k.startswith(task + "-")]
        labels = ["idk pool", *runs[0]["variants"]]
        rows = [[run["pool"], *run["variants"].values()] for run in runs]
        axes = figure.add_subplot(1, len(tasks), n + 1)
        for offset, (metric, name) in enumerate(
            (("known_share", "truly known"), ("top_relation_share", "largest relation"))
        ):
            means = [sum(r[k][metric] for r in rows) / len(rows) for k in range(len(labels))]
            axes.bar([k + 0.4 * offset for k in range(len(labels))], means, width=0.4, label=name)
        axes.set_xticks([k + 0.2 for k in range(len(labels))], labels, rotation=20)
        axes.set_ylim(0, 1.2)
        axes.set_title(f"{task}: share of the {runs[0]['variants'][labels[1]]['n']} picks")
        axes.legend(loc="upper left", ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {}
    torch.set_num_threads(1)
    for task in args.tasks:
        for world in args.worlds:
            truth = truth_of(args.worlds_dir / f"{args.size}-seed{world}", task)
            for seed in args.seeds:
                job_dir = args.work / "jobs" / JOB_NAME.format(task=task, world=world, seed=seed)
                if not (job_dir / REPORT_FILE).exists():
                    print(f"skip {job_dir}: no finished grait job", file=sys.stderr)
                    continue
                key = f"{task}-w{world}-s{seed}"
                results[key] = analyse_job(job_dir, truth, args.variants, seed)
                print(key, json.dumps(results[key], indent=1), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if args.plot is not None and results:
        plot_profiles(results, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
