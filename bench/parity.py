"""CPU-vs-CUDA parity of a whole GRAIT job on the tiny toy world, and the projection on CUDA.

Needs a CUDA device (prints a note and exits 0 without one). On the tiny world it runs the
same ``grait`` job (choice task) three times through ``run_job``: on the CPU in float32, on
CUDA in float32 with TF32 off, and on CUDA in bfloat16 (the production setting, for
information), each with its own stage cache, then compares every stage's output with the
CPU run's. The job has no LoRA dropout: dropout masks come from each device's own random
generator (the CPU's and CUDA's streams differ by design), so with dropout the warmup and
the fine-tune differ between devices for that reason alone (measured: feature cosines down
to 0.875 and another selection, with identical probes and predictions).

- probe: largest difference of ``c_i`` (target for float32: within 1e-4);
- split and selection: identical ik/idk sets and selected ids (float32 target: identical);
- features: smallest cosine between matching rows of F_ans and F_idk (target >= 0.9999);
- evaluation: share of identical predictions (target >= 99% in float32).

Then a checkpoint written on the CPU is resumed on CUDA (must not fail), and the projection
of (128, D) rows at Llama-3-8B / r 128 / d 8192 is timed per method against the 2*n*D*d
FLOPs of its matmul.

    python bench/parity.py [--world DIR] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from grait_engine.job_folder import EVAL_DIR, SELECTION_FILE, SPLIT_FILE, STAGES_FILE

LLAMA3_8B_R128 = 109_051_904  # LoRA r 128 on q/k/v/o of Llama-3-8B


def tiny_world(given: str | None) -> Any:
    from grait_engine.toyworld import build_toyworld, preset

    root = Path(given) if given else Path(tempfile.gettempdir()) / "grait-parity-world"
    return build_toyworld(preset("tiny", seed=0), root)


def job_config(world: Any, device: str, dtype: str) -> dict[str, Any]:
    return {
        "model": str(world.model_dir),
        "task": "choice",
        "training_dataset": str(world.data_path("choice", "train")),
        "eval_datasets": {
            "id": str(world.data_path("choice", "test_id")),
            "ood": str(world.data_path("choice", "test_ood")),
        },
        "method": {"type": "grait", "n_ik": 32, "n_idk": 32},
        "probe": {"choice_shots": 1},
        # No LoRA dropout: its masks come from each device's own random generator (CPU and
        # CUDA streams differ by design), which would make warmups and fine-tunes differ.
        "features": {"lora_r": 8, "warmup_max_items": 64, "lora_dropout": 0.0},
        "training": {"lora_r": 8, "epochs": 1, "batch_size": 8, "lora_dropout": 0.0},
        "runtime": {"tf32": False},
        "seed": 0,
        "device": device,
        "dtype": dtype,
    }


def run(world: Any, root: Path, device: str, dtype: str) -> tuple[Path, dict[str, Any], float]:
    from grait_engine.pipeline.config import load_job_config
    from grait_engine.pipeline.run import run_job

    out = root / f"{device}-{dtype}"
    start = time.perf_counter()
    report = run_job(load_job_config(job_config(world, device, dtype)), out, out / "cache")
    return out, report, time.perf_counter() - start


def probe_scores(out: Path) -> dict[str, float]:
    from grait_engine.probe.store import read_probe

    stages = json.loads((out / STAGES_FILE).read_text())
    return {r["id"]: float(r["correctness"]) for r in read_probe(stages["probe"])[1]}


def features(out: Path) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    from grait_engine.features_store import FeatureStore

    stages = json.loads((out / STAGES_FILE).read_text())
    store = FeatureStore.open(Path(stages["features"]) / "features")
    rows = torch.arange(store.n)
    return list(store.ids), store.gather("ans", rows), store.gather("idk", rows)


def predictions(out: Path) -> dict[str, str]:
    found = {}
    for path in sorted((out / EVAL_DIR).glob("*/*/predictions.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[f"{path.parent.parent.name}/{path.parent.name}/{record['id']}"] = record["output"]
    return found


def compare(reference: Path, other: Path) -> dict[str, Any]:
    """Every stage of ``other`` against ``reference`` (the CPU float32 run)."""
    a, b = probe_scores(reference), probe_scores(other)
    split_a, split_b = (json.loads((p / SPLIT_FILE).read_text()) for p in (reference, other))
    sel_a, sel_b = (json.loads((p / SELECTION_FILE).read_text()) for p in (reference, other))
    ids_a, ans_a, idk_a = features(reference)
    ids_b, ans_b, idk_b = features(other)
    assert ids_a == ids_b
    cosine = torch.cat([(ans_a * ans_b).sum(1), (idk_a * idk_b).sum(1)])
    pred_a, pred_b = predictions(reference), predictions(other)
    same = sum(pred_a[k] == pred_b.get(k) for k in pred_a)
    return {
        "probe_max_abs_diff": max(abs(a[k] - b[k]) for k in a),
        "split_identical": all(split_a[k] == split_b[k] for k in ("ik", "idk")),
        "selection_identical": [(i["id"], i["role"]) for i in sel_a["items"]]
        == [(i["id"], i["role"]) for i in sel_b["items"]],
        "weights_max_abs_diff": max(
            abs(i["weight"] - j["weight"])
            for i, j in zip(sel_a["items"], sel_b["items"], strict=True)
        ),
        "feature_min_cosine": float(cosine.min()),
        "predictions_identical": same / max(1, len(pred_a)),
        "n_predictions": len(pred_a),
    }


def checkpoint_across_devices(world: Any, root: Path, other: str) -> dict[str, Any]:
    """A training checkpoint written on the CPU resumes on ``other`` without an error."""
    from grait_engine.modeling import ModelSpec, load_model
    from grait_engine.records.jsonl import read_items
    from grait_engine.stages import StageCallbacks
    from grait_engine.training.config import TrainingConfig
    from grait_engine.training.loss import Example
    from grait_engine.training.stage import TrainingCancelled, run_training

    items = read_items(world.data_path("choice", "train"), "choice")[:24]
    examples = [Example(item, k % 3 == 0) for k, item in enumerate(items)]
    config = TrainingConfig(lora_r=4, epochs=2, batch_size=4, checkpoint_every=2)
    out, calls = root / "resume", iter(range(1000))
    model, tokenizer = load_model(ModelSpec(str(world.model_dir), device="cpu"))
    try:
        stop = StageCallbacks(cancel=lambda: next(calls) == 5)
        run_training(model, tokenizer, examples, config, out, seed=0, callbacks=stop)
    except TrainingCancelled:
        pass
    model, tokenizer = load_model(ModelSpec(str(world.model_dir), device=other))
    result = run_training(model, tokenizer, examples, config, out, seed=0)
    return {"resumed_from_step": result.resumed_from, "steps": result.steps}


def projection_speed() -> dict[str, Any]:
    """(128, D) bfloat16 rows at Llama-3-8B / r 128 / d 8192: seconds per pass by method."""
    from grait_engine.features.projection import Projector

    n, d = 128, 8192
    rows = torch.randn(n, LLAMA3_8B_R128, device="cuda", dtype=torch.bfloat16)
    flops = 2 * n * LLAMA3_8B_R128 * d
    figures: dict[str, Any] = {"rows": n, "n_params": LLAMA3_8B_R128, "d": d}
    outputs = {}
    for method in ("fused", "dense"):
        projector = Projector(LLAMA3_8B_R128, d, 0, "cuda", "bfloat16", method=method)
        projector.project(rows[:8])  # compile / warm up
        torch.cuda.synchronize()
        start = time.perf_counter()
        outputs[method] = projector.project(rows)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        figures[method] = {
            "seconds": seconds,
            "tflops": flops / seconds / 1e12,
            "method_used": projector.method,
        }
    cosine = (outputs["fused"] * outputs["dense"]).sum(1)
    figures["fused_vs_dense_min_cosine"] = float(cosine.min())
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", help="tiny toy world directory (built there if missing)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--skip-speed", action="store_true", help="no 8B-size projection timing")
    parser.add_argument(
        "--other",
        default="cuda",
        help="device compared with the CPU (a dry run of this script: --other cpu --skip-speed)",
    )
    args = parser.parse_args()
    if args.other == "cuda" and not torch.cuda.is_available():
        print("parity: no CUDA device here; nothing to compare (skipped)")
        return 0
    name = torch.cuda.get_device_name(0) if args.other == "cuda" else args.other
    figures: dict[str, Any] = {"device": name, "torch": torch.__version__}
    world = tiny_world(args.world)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cpu, _, cpu_seconds = run(world, root, "cpu", "float32")
        figures["cpu_float32_seconds"] = cpu_seconds
        for name, dtype in (("float32", "float32"), ("bfloat16", "bfloat16")):
            out, _, seconds = run(world, root / "other", args.other, dtype)
            figures[f"other_{name}"] = {"seconds": seconds, **compare(cpu, out)}
            print(name, json.dumps(figures[f"other_{name}"]), flush=True)
        figures["checkpoint_cpu_to_other"] = checkpoint_across_devices(world, root, args.other)
    if not args.skip_speed:
        try:
            figures["projection_8b"] = projection_speed()
        except Exception as error:  # report the parity figures even so
            figures["projection_8b"] = {"error": repr(error)}
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    figures["other_device"] = args.other
    f32 = figures["other_float32"]
    ok = (
        f32["probe_max_abs_diff"] <= 1e-4
        and f32["split_identical"]
        and f32["selection_identical"]
        and f32["feature_min_cosine"] >= 0.9999
        and f32["predictions_identical"] >= 0.99
    )
    print(f"parity (float32, CPU vs {args.other}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
