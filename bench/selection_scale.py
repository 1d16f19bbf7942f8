"""Selection (METHOD.md stages 4-5) at scale: linear-memory greedy vs the N x N approach.

Writes synthetic clustered, L2-normalised features (block by block, never whole in RAM) to a
temporary feature store, then runs in separate processes, each timed with its own peak RSS:

1. the stage (``run_selection``, greedy + adaptive weights) on the whole pool (default
   N = 100,000 items, d = 8192, N_idk = 2,000);
2. the same stage on the first ``--nxn-n`` items;
3. the literal N x N approach (``selection.reference``: explicit float64 ``S_II`` and
   ``S_IA``) on those same items, checked to select the same items with the same weights.

    .venv/bin/python bench/selection_scale.py            # full size: several minutes, ~7 GB in /tmp
    .venv/bin/python bench/selection_scale.py --n 20000 --d 1024 --nxn-n 5000   # quick look

Peak memory is ``ru_maxrss`` of each child (resident pages, including the memory-mapped
feature pages it touched while they were mapped). The page cache that holds the feature
files is not counted: right after writing, they are read from RAM; on a cold cache each
pass would be disk-bound (the bytes read per run are printed).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from grait_engine.features_store import FeatureStore
from grait_engine.features_writer import FeatureWriter
from grait_engine.job_folder import SELECTION_FILE
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.inputs import PoolSplit
from grait_engine.selection.reference import (
    reference_alpha,
    reference_greedy,
    reference_weights,
)
from grait_engine.selection.stage import run_selection

GIB = 1024**3


def generate(
    directory: Path, n: int, d: int, clusters: int, idk_fraction: float, seed: int
) -> dict:
    """Write the store and ``probe.json``; features = unit(0.5 * center + noise) per cluster."""
    generator = torch.Generator().manual_seed(seed)
    centers = {
        k: torch.nn.functional.normalize(torch.randn(clusters, d, generator=generator), dim=1)
        for k in ("ans", "idk")
    }
    ids, correctness = [], []
    with FeatureWriter(directory / "features", d, shard_rows=4096) as writer:
        for lo in range(0, n, 4096):
            size = min(4096, n - lo)
            labels = torch.randint(0, clusters, (size,), generator=generator)
            rows = {}
            for name, center in centers.items():
                noise = torch.nn.functional.normalize(
                    torch.randn(size, d, generator=generator), dim=1
                )
                rows[name] = torch.nn.functional.normalize(0.5 * center[labels] + noise, dim=1)
            block_ids = [f"item-{i:06d}" for i in range(lo, lo + size)]
            writer.append(block_ids, rows["ans"], rows["idk"])
            is_idk = torch.rand(size, generator=generator) < idk_fraction
            c = torch.rand(size, generator=generator) * 0.5 + torch.where(is_idk, 0.0, 0.5)
            ids += block_ids
            correctness += c.tolist()
    probe = {"ids": ids, "correctness": correctness}
    (directory / "probe.json").write_text(json.dumps(probe))
    return probe


def split_for(directory: Path, limit: int) -> PoolSplit:
    probe = json.loads((directory / "probe.json").read_text())
    return PoolSplit.from_probe(probe["ids"][:limit], probe["correctness"][:limit], tau=0.5)


def child_linear(directory: Path, limit: int, n_ik: int, n_idk: int) -> dict:
    split = split_for(directory, limit)
    start = time.perf_counter()
    out = directory / f"linear-{limit}"
    # The greedy variant: the N x N reference below is the greedy (METHOD.md stage 4).
    config = SelectionConfig(n_ik=n_ik, n_idk=n_idk, variant="greedy")
    run_selection(config, split, directory / "features", out)
    wall = time.perf_counter() - start
    doc = json.loads((out / SELECTION_FILE).read_text())
    return {
        "wall": wall,
        "greedy": doc["summary"]["greedy"],
        "pool": doc["summary"]["pools"]["idk"],
        "items": doc["items"],
    }


def child_nxn(directory: Path, limit: int, n_ik: int, n_idk: int) -> dict:
    """The literal approach: N x N float64 S_II over all items, explicit S_IA, loop."""
    split = split_for(directory, limit)
    start = time.perf_counter()
    store = FeatureStore.open(directory / "features")
    ik_rows, idk_rows = (
        torch.sort(store.rows_of(split.ik_ids)),
        torch.sort(store.rows_of(split.idk_ids)),
    )
    c = torch.tensor(split.ik_correctness, dtype=torch.float64)[ik_rows.indices]
    ik_rows, idk_rows = ik_rows.values, idk_rows.values
    ik_sel = ik_rows[torch.sort(c, descending=True, stable=True).indices[:n_ik]]
    pool = len(idk_rows)
    f_idk = torch.empty(pool + len(ik_rows), store.d, dtype=torch.float64)
    for offset, rows in ((0, idk_rows), (pool, ik_rows)):  # idk pool first: S_II[:pool, :pool]
        for block in store.iter_blocks("idk", rows):
            f_idk[offset + block.offset : offset + block.offset + len(block.rows)] = block.values
    s_ii = f_idk @ f_idk.T  # (N, N)
    s_ia = f_idk[:pool] @ store.gather("ans", ik_sel, dtype=torch.float64).T
    del f_idk
    run = reference_greedy(s_ia, s_ii[:pool, :pool], n_idk)
    alpha = reference_alpha(s_ii[run.order, pool:], s_ii[run.order, :pool])
    weights = reference_weights(alpha, 0.05, -1, 1.0)
    wall = time.perf_counter() - start
    ids = [store.ids[r] for r in idk_rows[run.order].tolist()]
    return {
        "wall": wall,
        "ik": [store.ids[r] for r in ik_sel.tolist()],
        "idk": ids,
        "weights": weights.tolist(),
    }


def spawn(mode: str, directory: Path, limit: int, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--workdir",
        str(directory),
        "--limit",
        str(limit),
    ]
    command += ["--n-ik", str(args.n_ik), "--n-idk", str(args.n_idk)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_selection(linear: dict, nxn: dict) -> str:
    ik = [item["id"] for item in linear["items"] if item["role"] == "ik"]
    idk = [item for item in linear["items"] if item["role"] == "idk"]
    if ik != nxn["ik"] or [item["id"] for item in idk] != nxn["idk"]:
        return "DIFFERENT selections"
    gap = max(
        (abs(item["weight"] - w) for item, w in zip(idk, nxn["weights"], strict=True)), default=0.0
    )
    return f"identical selections (max weight difference {gap:.1e})"


def report(args: argparse.Namespace, gen_wall: float, big: dict, small: dict, nxn: dict) -> None:
    d, bytes_f32 = args.d, 4
    print(
        f"data: N={args.n} items, d={d}, idk pool {big['pool']} ({args.idk_fraction:.0%}), {args.clusters} clusters;"
        f" N_ik={args.n_ik}, N_idk={args.n_idk}; written in {gen_wall:.0f} s ({2 * args.n * d * bytes_f32 / GIB:.1f} GiB)"
    )
    print(
        f"{'approach':<34}{'N':>8}{'wall s':>10}{'peak RSS GiB':>14}{'passes':>8}{'read GiB':>10}"
    )
    for label, n, result in (
        ("linear (this stage)", args.n, big),
        ("linear (this stage)", args.nxn_n, small),
        ("N x N (float64 S_II, S_IA)", args.nxn_n, nxn),
    ):
        passes = result.get("greedy", {}).get("passes") if "greedy" in result else None
        read = (
            f"{(passes + 1) * result['pool'] * d * bytes_f32 / GIB:10.1f}"
            if passes
            else f"{'-':>10}"
        )
        print(
            f"{label:<34}{n:>8}{result['wall']:>10.1f}{result['rss'] / GIB:>14.2f}{passes or '-':>8}{read}"
        )
    print(f"greedy blocks at N={args.n}: {big['greedy']}")
    print(
        f"at N={args.nxn_n}: N x N / linear = {nxn['wall'] / small['wall']:.1f}x time, {nxn['rss'] / small['rss']:.1f}x memory; {same_selection(small, nxn)}"
    )
    print(
        f"N x N at N={args.n} would need {args.n**2 * 8 / GIB:.0f} GiB for S_II alone (float64; {args.n**2 * 4 / GIB:.0f} GiB in float32)"
    )
    ok = big["wall"] < 180 and big["rss"] < 10 * GIB
    print(f"goal (N={args.n}: < 180 s and < 10 GiB): {'met' if ok else 'NOT met'}")
    print(
        "note: peak RSS excludes the page cache holding the feature files (read from RAM here); read GiB ~ (passes + 1 means pass) x pool"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=8192)
    parser.add_argument("--n-ik", type=int, default=2000)
    parser.add_argument("--n-idk", type=int, default=2000)
    parser.add_argument("--idk-fraction", type=float, default=0.9)
    parser.add_argument("--clusters", type=int, default=64)
    parser.add_argument("--nxn-n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workdir", default=None, help="parent of the temporary data (default /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--child", choices=("linear", "nxn"), help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = child_linear if args.child == "linear" else child_nxn
        result = run(Path(args.workdir), args.limit, args.n_ik, args.n_idk)
        result["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps(result))
        return
    directory = Path(tempfile.mkdtemp(prefix="grait-bench-select-", dir=args.workdir))
    try:
        start = time.perf_counter()
        generate(directory, args.n, args.d, args.clusters, args.idk_fraction, args.seed)
        gen_wall = time.perf_counter() - start
        big = spawn("linear", directory, args.n, args)
        small = spawn("linear", directory, args.nxn_n, args)
        nxn = spawn("nxn", directory, args.nxn_n, args)
        report(args, gen_wall, big, small, nxn)
    finally:
        if args.keep:
            print(f"data kept in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
