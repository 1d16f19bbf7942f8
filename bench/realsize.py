"""Every stage on a Llama-3-8B-shaped model with random weights: speed, memory, extrapolation.

The model has Llama-3-8B's shape (hidden 4096, 32 heads, 8 KV heads, MLP 14336, vocabulary
128,256, rope theta 500,000) with ``--layers`` decoder layers and seeded random weights; it is
built on the meta device and initialised in place (no download, no Hugging Face init). The
tokenizer is a byte-level BPE of 32,000 tokens trained here on the text of the benchmark
files, so the prompts are real MMLU, ARC-Challenge and NQ items from ``--datasets``. In one
process, on one copy of the model, through the engine's public functions called as
``grait_engine/pipeline/run.py`` calls them:

1. probe: choice (5-shot from MMLU dev) on the first ``--items`` MMLU test items (the pool),
   and the open probe (3-shot, N = 10 samples) on as many NQ dev items (timed apart: NQ is
   the open benchmark, not part of the MMLU job);
2. split at tau 0.5 (at the median correctness when a random model leaves a side empty);
3. features with the LESS setting (LoRA r 128, alpha 512, dropout 0.1 on q, k, v, o;
   d = 8192): the warmup is timed apart from the gradient + projection pass (the stage's
   ``"warmup ready"`` progress call separates them);
4. the references: a plain batched forward+backward (summed ``.grad`` of a LoRA of the same
   rank and targets) over the same sequences in the same groups and batches, and
   ``Projector.project`` alone on random buffers of the stage's group shapes;
5. selection (default knobs), ``--train-steps`` steps of training (default TrainingConfig,
   r 64) and evaluation (init_basic, init_refuse, tuned) on ``--eval-items`` items of MMLU
   val and of ARC-Challenge test.

It prints items/s and peak memory per stage, the features cost per item as a ratio to the
plain forward+backward, and an extrapolation to the full MMLU job from this run's device and
layer count. The last line is ``features/fwd+bwd = X.XXx``.

The parts: ``realsize_bench.py`` (clock, memory, stage records), ``realsize_model.py`` (the
inputs and the model), ``realsize_stages.py`` and ``realsize_features.py`` (the stages and
the references), ``realsize_report.py`` (the extrapolation and the printed report).

    .venv/bin/python bench/realsize.py --layers 1 --items 8           # 2-core CPU: < 15 minutes
    python bench/realsize.py --layers 32 --items 256 --device cuda \\
        --datasets DIR --json realsize.json                             # one 80 GB GPU
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from realsize_bench import Bench, Clock, Events, Memory
from realsize_features import features_stage, fwd_bwd_reference, projection_fit
from realsize_model import (
    FULL_LAYERS,
    build_model,
    build_tokenizer,
    check_finite,
    corpus,
    load_data,
    model_bytes,
)
from realsize_report import device_name, extrapolate, length_factors, report
from realsize_stages import (
    evaluation_stage,
    probe_stage,
    selection_stage,
    split_stage,
    training_stage,
)

from grait_engine.pipeline.runtime import DEFAULT_BATCH_SIZE

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cuda = torch.cuda.is_available()
    # Defaults that run anywhere (make bench): the whole model on a GPU, one layer on a CPU.
    parser.add_argument(
        "--layers",
        type=int,
        default=FULL_LAYERS if cuda else 1,
        help="decoder layers (default: 32 on CUDA, 1 on the CPU)",
    )
    parser.add_argument(
        "--items",
        type=int,
        default=256 if cuda else 8,
        help="pool items (MMLU test; NQ too; default: 256 on CUDA, 8 on the CPU)",
    )
    parser.add_argument("--eval-items", type=int, default=16, help="items of each test set")
    parser.add_argument("--train-steps", type=int, default=3, help="optimiser steps timed")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="model dtype (default: bfloat16 on CUDA, float32 on the CPU)",
    )
    parser.add_argument(
        "--datasets",
        default=os.path.join(os.path.dirname(HERE), "..", "shared", "datasets"),
        help="the benchmark files (mmlu/, ARC/, nq/); default ../shared/datasets",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="sequences per forward pass (default: the engine's for the device)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=None,
        help="where the scratch folder is made (default: the system temp dir); it is removed",
    )
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    if min(args.layers, args.items, args.eval_items, args.train_steps) < 1:
        parser.error("--layers, --items, --eval-items and --train-steps must be >= 1")
    if args.items < 2:
        parser.error("--items must be >= 2 (the split needs both sides)")
    return args


def main() -> None:
    args = parse_args()
    wall = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    clock = Clock(device)
    batch = args.batch_size or DEFAULT_BATCH_SIZE.get(device.type, DEFAULT_BATCH_SIZE["cpu"])
    b = Bench(args, device, dtype, clock, Memory(device), Events(clock), batch)
    scratch_root = Path(args.out) if args.out else None
    if scratch_root is not None:
        scratch_root.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix="grait-realsize-", dir=scratch_root))
    try:
        print(
            f"realsize: {args.layers} layer(s) on {device} in {dtype_name}, scratch {out}",
            file=sys.stderr,
        )
        data = b.run("load datasets", lambda: load_data(Path(args.datasets)), 5, unit="files")
        texts = corpus(data)
        tokenizer = b.run("train tokenizer", lambda: build_tokenizer(texts), len(texts), "texts")
        model = b.run(
            "build model",
            lambda: build_model(args, tokenizer, device, dtype),
            args.layers,
            unit="layers",
        )
        size = model_bytes(model)
        b.figures["n_model_params"] = sum(p.numel() for p in model.parameters())
        pool = data.mmlu_test[: args.items]
        check_finite(model, tokenizer, pool, device)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # RuntimeConfig's default (run.py)
            torch.backends.cudnn.allow_tf32 = True
        correctness = probe_stage(b, model, tokenizer, data, out)
        split_stage(b, correctness, out)
        features_stage(b, model, tokenizer, pool, correctness, out)
        fwd_bwd_reference(b, model, tokenizer, pool)
        projection_fit(b)
        examples = selection_stage(b, out)
        tuned = training_stage(b, model, tokenizer, pool, examples, out)
        evaluation_stage(b, tuned, tokenizer, data, out)
        b.figures["lengths"] = length_factors(b, tokenizer, data)
        b.figures["extrapolation"] = extrapolate(b)
        ratio = report(b, size)
        seconds = time.perf_counter() - wall
        print(f"wall time {seconds / 60:.1f} min")
        if args.json:
            document = {
                "args": vars(args),
                "device": str(device),
                "device_name": device_name(device),
                "dtype": dtype_name,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "batch_size": batch,
                "model_bytes": size,
                "overall_peak_bytes": b.memory.overall,
                "peak_resettable": b.memory.resettable,
                "stages": b.stages,
                "figures": b.figures,
                "notices": b.events.notices,
                "wall_s": seconds,
                "extrapolation_rough_32_layers": {
                    k: v * FULL_LAYERS / args.layers for k, v in b.figures["extrapolation"].items()
                },
                "features_over_fwd_bwd": ratio,
            }
            Path(args.json).write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"features/fwd+bwd = {ratio:.2f}x")
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
