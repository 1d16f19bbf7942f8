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

    .venv/bin/python bench/realsize.py --layers 1 --items 8           # 2-core CPU: < 15 minutes
    python bench/realsize.py --layers 32 --items 256 --device cuda \\
        --datasets DIR --json realsize.json                             # one 80 GB GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grait_engine.evaluation.evaluate import evaluate_set
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.projection import Projector
from grait_engine.features.sequences import collate, encode_pair, per_sample_loss
from grait_engine.features.stage import SpeedSettings, run_features
from grait_engine.lora import (
    LLAMA_ATTENTION,
    attach_lora,
    cast_lora,
    count_lora_parameters,
    lora_parameters,
    remove_lora,
)
from grait_engine.memory import Batching, available_bytes, budget_bytes
from grait_engine.methods import build_examples
from grait_engine.pipeline.runtime import DEFAULT_BATCH_SIZE
from grait_engine.probe.batching import encode_prompts, probe_prompts
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.stage import run_probe
from grait_engine.probe.store import read_probe
from grait_engine.prompts import REFUSAL, STYLES, build_prompt, instruction, solved_example
from grait_engine.records.importers import import_dataset
from grait_engine.records.item import Item
from grait_engine.selection.config import SelectionConfig
from grait_engine.selection.stage import run_selection
from grait_engine.split.stage import load_split, run_split
from grait_engine.stages import StageCallbacks
from grait_engine.training.config import TrainingConfig
from grait_engine.training.loss import Example
from grait_engine.training.stage import run_training

HERE = os.path.dirname(os.path.abspath(__file__))

# Llama-3-8B (meta-llama/Meta-Llama-3-8B config.json), less the layer count.
SHAPE = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
ROPE_THETA = 500000.0
FULL_LAYERS = 32
TOKENIZER_VOCAB = 32000
# The LESS warmup/gradient LoRA (princeton-nlp/LESS scripts/train/base_training_args.sh),
# which GRAIT's features follow: rank 128, alpha 512, dropout 0.1 on the attention projections.
FEATURES = FeaturesConfig(
    dim=8192, lora_r=128, lora_alpha=512.0, lora_dropout=0.1, target_modules=LLAMA_ATTENTION
)
# The full MMLU job the figures are extrapolated to.
FULL = {
    "pool": 14042,  # MMLU test
    "warmup": 1000,  # FeaturesConfig.warmup_max_items: assumes >= 1000 items with c >= 0.99
    "train_examples": 5000 * 3,  # N_ik + N_idk = 5,000 for 3 epochs
    "mmlu_val": 1531,
    "arc_c": 1172,
}
EVAL_RUNS = 3  # init_basic, init_refuse, tuned
LENGTH_SAMPLE = 1000  # MMLU test items whose prompt lengths stand for the whole pool
GiB = 2**30
PRE_MODEL = ("load datasets", "train tokenizer")  # stages before the model exists
# The projection fit times 2 rows on D / PROJECTION_SLICE rows of P, and the full job's
# group on PROJECTION_WORK[device] / rows rows of P (at least PROJECTION_MIN_COLUMNS), then
# scales to D (bigger slices on CUDA, where a small one takes milliseconds).
PROJECTION_SLICE = 8
PROJECTION_WORK = {"cpu": 2**24, "cuda": 2**30}
PROJECTION_MIN_COLUMNS = 16384


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


# --- measuring ------------------------------------------------------------------------------


class Clock:
    """``perf_counter`` after the device has finished its queued work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


class Memory:
    """Peak memory per stage: CUDA's max allocated, or the process's peak RSS (VmHWM, reset
    between stages through /proc/self/clear_refs where the kernel allows it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = device.type == "cuda"
        self.overall = self._read()

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets the peak RSS (VmHWM)
            self.resettable = True
        except OSError:
            self.resettable = False

    def peak(self) -> int:
        value = self._read()
        self.overall = max(self.overall, value)
        return value

    def _read(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class Events:
    """The stages' progress and notice callbacks: timestamped, printed now and then."""

    def __init__(self, clock: Clock, every_s: float = 30.0) -> None:
        self.clock, self.every_s = clock, every_s
        self.log: list[tuple[float, str, int, int, str]] = []
        self.notices: list[str] = []
        self._printed = 0.0

    def progress(self, stage: str, done: int, total: int, message: str) -> None:
        now = self.clock()
        self.log.append((now, stage, done, total, message))
        if now - self._printed >= self.every_s:
            self._printed = now
            print(f"    [{stage}] {done}/{total} {message}", file=sys.stderr, flush=True)

    def notice(self, stage: str, message: str) -> None:
        self.notices.append(f"{stage}: {message}")
        print(f"    [{stage}] NOTICE {message}", file=sys.stderr, flush=True)

    def of(self, stage: str, since: float) -> list[tuple[float, str, int, int, str]]:
        return [event for event in self.log if event[1] == stage and event[0] >= since]

    def callbacks(self) -> StageCallbacks:
        """``progress`` and ``notice`` as a stage's callbacks."""
        return StageCallbacks(progress=self.progress, notice=self.notice)


@dataclass
class Bench:
    """What every part of the run shares, and the figures it collects."""

    args: argparse.Namespace
    device: torch.device
    dtype: torch.dtype
    clock: Clock
    memory: Memory
    events: Events
    batch_size: int
    figures: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, work: Callable[[], Any], count: int, unit: str = "items") -> Any:
        """Run ``work()`` as stage ``name`` over ``count`` units; record seconds and peak."""
        print(f"  {name} ...", file=sys.stderr, flush=True)
        self.memory.reset()
        start = self.clock()
        result = work()
        seconds = self.clock() - start
        self.stages[name] = {
            "seconds": seconds,
            "count": count,
            "unit": unit,
            "per_s": count / seconds if seconds > 0 else math.inf,
            "peak_bytes": self.memory.peak(),
            "start": start,
        }
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return result


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    mmlu_test: list[Item]
    mmlu_dev: list[Item]
    mmlu_val: list[Item]
    arc_c: list[Item]
    nq: list[Item]


def load_data(root: Path) -> Data:
    """The benchmark files through the engine's importers (see ../shared/datasets/README.md)."""
    paths = {
        "mmlu_test": (root / "mmlu" / "test", "mmlu"),
        "mmlu_dev": (root / "mmlu" / "dev", "mmlu"),
        "mmlu_val": (root / "mmlu" / "val", "mmlu"),
        "arc_c": (root / "ARC" / "ARC-c" / "ARC-Challenge-Test.jsonl", "arc"),
        "nq": (root / "nq" / "en" / "dev.json", "nq"),
    }
    missing = [str(path) for path, _ in paths.values() if not path.exists()]
    if missing:
        sys.exit(f"benchmark files not found (set --datasets): {', '.join(missing)}")
    return Data(**{name: import_dataset(path, fmt) for name, (path, fmt) in paths.items()})


def corpus(data: Data) -> list[str]:
    """Text to train the tokenizer on: every item as a solved example, plus the prompts'
    fixed lines (instructions for every subject and style, the refusal)."""
    items = [*data.mmlu_test, *data.mmlu_dev, *data.mmlu_val, *data.arc_c, *data.nq]
    texts = [solved_example(item) for item in items]
    subjects = sorted({item.subject for item in items if item.subject}) + [None]
    for style in STYLES:
        texts += [instruction("choice", style, subject) for subject in subjects]
        texts.append(instruction("open", style))
    return [*texts, REFUSAL]


def build_tokenizer(texts: Sequence[str]) -> Any:
    """A byte-level BPE (``TOKENIZER_VOCAB`` tokens) with ``<s> </s> <pad>``; BOS prepended
    (as ``tests/engine/helpers.build_tiny_tokenizer``), padding on the left."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = SHAPE["max_position_embeddings"]
    return tokenizer


# --- the model ------------------------------------------------------------------------------


def build_model(
    args: argparse.Namespace, tokenizer: Any, device: torch.device, dtype: torch.dtype
) -> Any:
    """Llama-3-8B's shape with ``args.layers`` layers and seeded random weights.

    Built on the meta device, moved to ``device`` uninitialised (``to_empty``), then filled:
    normal(0, 0.02) matrices and embeddings, ones for the RMSNorm weights. The rotary
    embedding's ``inv_freq`` is a non-persistent buffer computed in ``__init__`` (garbage
    after ``to_empty``), so every rotary module is built again on the CPU and moved over."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **SHAPE,
        num_hidden_layers=args.layers,
        rope_theta=ROPE_THETA,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    rope = getattr(config, "rope_parameters", None)  # transformers 5 keeps theta here
    if isinstance(rope, dict) and "rope_theta" in rope:
        rope["rope_theta"] = ROPE_THETA
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.to(dtype)  # meta: free; the real memory comes with to_empty
    needed = sum(p.numel() for p in model.parameters()) * dtype.itemsize
    if needed > available_bytes(device):
        sys.exit(
            f"{args.layers} layer(s) in {dtype} need {needed / GiB:.1f} GiB for the weights, more "
            f"than the {available_bytes(device) / GiB:.1f} GiB free on {device}: use fewer --layers"
        )
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.ndim == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    names = dict(model.named_modules())
    rotary = [n for n, m in names.items() if type(m).__name__.endswith("RotaryEmbedding")]
    if not rotary:
        raise RuntimeError("no rotary embedding module found: cannot fix inv_freq")
    for name in rotary:
        parent, _, leaf = name.rpartition(".")
        fresh = type(names[name])(config=model.config)  # on the CPU, float32 inv_freq
        setattr(names[parent] if parent else model, leaf, fresh.to(device))
    fresh_buffers = {f"{n}.{b}" for n in rotary for b, _ in model.get_submodule(n).named_buffers()}
    stale = [n for n, _ in model.named_buffers() if n not in fresh_buffers]
    if stale:
        raise RuntimeError(f"buffers left uninitialised by to_empty: {stale}")
    check_rotary(model, rotary)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.grait_revision = f"realsize-random-{args.layers}"
    return model


def check_rotary(model: Any, names: Sequence[str]) -> None:
    """Every rotary ``inv_freq`` equals Llama's default ``1 / theta^(2i / head_dim)``."""
    head_dim = SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
    expected = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    for name in names:
        got = model.get_submodule(name).inv_freq.detach().float().cpu()
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-6):
            raise RuntimeError(f"{name}.inv_freq is wrong after building the model")


def check_finite(model: Any, tokenizer: Any, items: Sequence[Item], device: torch.device) -> None:
    """The model's full logits on two real sequences are finite."""
    sequences = [encode_pair(item, tokenizer)[0] for item in items[:2]]
    batch = collate(sequences, int(tokenizer.pad_token_id), device)
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits
    if not bool(torch.isfinite(logits.float()).all()):
        raise RuntimeError("the random model gives non-finite logits")


def model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


# --- stages ---------------------------------------------------------------------------------


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


def features_stage(
    b: Bench, model: Any, tokenizer: Any, pool: list[Item], correctness: dict[str, float], out: Path
) -> Any:
    """``run_features`` as run.py calls it; splits warmup and gradient+projection time."""
    speed = SpeedSettings(batch_size=b.batch_size)
    b.figures["features_budget_bytes"] = budget_bytes(b.device, speed.memory_budget_mb)
    with ProjectionTimer(b.clock) as timer:
        result = b.run(
            "features",
            lambda: run_features(
                FEATURES,
                model,
                tokenizer,
                pool,
                correctness,
                out / "features",
                seed=b.args.seed,
                speed=speed,
                callbacks=b.events.callbacks(),
            ),
            len(pool),
        )
    stage = b.stages["features"]
    events = b.events.of("features", stage["start"])
    ready = [e for e in events if e[4] == "warmup ready"]
    if not ready:
        raise RuntimeError("run_features did not report 'warmup ready'")
    t_ready = ready[0][0]
    groups, done = [], 0
    for event in events:
        if event[0] > t_ready or (event[0] == t_ready and event[4] != "warmup ready"):
            if event[2] > done:
                groups.append(event[2] - done)
                done = event[2]
    warm = json.loads((out / "features" / "warmup" / "manifest.json").read_text())
    manifest = json.loads((out / "features" / "manifest.json").read_text())
    b.figures["features"] = {
        "warmup_s": t_ready - stage["start"],
        "warmup_items": int(warm["n_items"]),
        "warmup_steps": int(warm["steps"]),
        "warmup_fallback": bool(warm["fallback"]),
        "pass_s": stage["seconds"] - (t_ready - stage["start"]),
        "groups": groups,
        "n_params": int(manifest["n_params"]),
        "d": int(manifest["d"]),
        "projection_dtype": manifest["compute"]["projection_dtype"],
        "projection_calls": timer.calls,
        "projection_s": sum(seconds for _, seconds in timer.calls),
    }
    return result


def fwd_bwd_reference(b: Bench, model: Any, tokenizer: Any, pool: list[Item]) -> None:
    """A plain batched forward+backward (summed ``.grad``) over the features' sequences.

    Same LoRA rank and targets (in the model's dtype, eval mode, as the features' gradient
    pass), same groups of items, each group's 2n sequences sorted longest first and cut
    into batches of the stage's batch size."""
    f = b.figures["features"]
    peft = attach_lora(
        model,
        FEATURES.lora_r,
        FEATURES.lora_alpha,
        FEATURES.lora_dropout,
        list(FEATURES.target_modules or LLAMA_ATTENTION),
        b.args.seed,
    )
    try:
        cast_lora(peft, b.dtype)
        peft.eval()
        params = [param for _, param in lora_parameters(peft)]
        batches, start = [], 0
        pad = int(tokenizer.pad_token_id)
        for size in f["groups"]:
            pairs = [encode_pair(item, tokenizer) for item in pool[start : start + size]]
            start += size
            sequences = [a for a, _ in pairs] + [i for _, i in pairs]
            sequences.sort(key=lambda s: -len(s.ids))
            batches += [
                sequences[k : k + b.batch_size] for k in range(0, len(sequences), b.batch_size)
            ]
        tokens = sum(len(s.ids) for batch in batches for s in batch)

        def work() -> None:
            for batch in batches:
                per_sample_loss(peft, collate(batch, pad, b.device)).sum().backward()
            for param in params:
                param.grad = None

        with torch.enable_grad():
            b.run("fwd+bwd reference", work, len(pool))
        f["reference_tokens"] = tokens
        f["reference_batches"] = len(batches)
    finally:
        remove_lora(peft)


class ProjectionTimer:
    """Times every ``Projector.project`` call while installed (a wrapper on the class, so
    the features stage's own calls are measured: rows and seconds per call)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls: list[tuple[int, float]] = []
        self._original: Callable[..., torch.Tensor] | None = None

    def __enter__(self) -> ProjectionTimer:
        original = self._original = Projector.project

        def project(projector: Projector, rows: torch.Tensor) -> torch.Tensor:
            start = self.clock()
            out = original(projector, rows)
            self.calls.append((int(rows.shape[0]), self.clock() - start))
            return out

        Projector.project = project  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Projector.project = self._original  # type: ignore[method-assign]


def projection_fit(b: Bench) -> None:
    """A fit ``t = fixed + per_row * rows`` of one projection pass over all D rows of P.

    Two points: the full job's group (``SpeedSettings.group_size`` here, after the stage),
    timed on a slice of D and scaled to D (the cost is linear in D: P is processed in
    independent chunks of rows), and the stage's own largest call (exact, all of D) when it
    has at most half those rows, else 2 rows timed on D / ``PROJECTION_SLICE`` and scaled.
    The cost is not linear in the rows (``lut`` sizes its chunks by them), so the full job's
    projection is read at its own group size, not extrapolated from the stage's groups."""
    f = b.figures["features"]
    n_params, dtype_name = f["n_params"], f["projection_dtype"]
    row_bytes = torch.empty((), dtype=getattr(torch, dtype_name)).element_size()
    full_group = SpeedSettings(batch_size=b.batch_size).group_size(n_params, row_bytes, b.device)
    generator = torch.Generator(device=b.device).manual_seed(b.args.seed)
    repeats = 3 if b.device.type == "cuda" else 1

    def scaled(rows: int, part: int) -> float:
        """Seconds of projecting ``rows`` rows of D, from a slice of ``part`` columns."""
        projector = Projector(part, FEATURES.dim, b.args.seed, b.device, dtype_name)
        buffer = torch.randn(
            rows, part, generator=generator, device=b.device, dtype=projector.row_dtype
        )
        projector.project(buffer[:2])  # the kernel's compilation is not a pass's cost
        best = math.inf
        for _ in range(repeats):
            start = b.clock()
            projector.project(buffer)
            best = min(best, b.clock() - start)
        f["projection_method"] = projector.method
        del buffer
        return best * n_params / part

    big = 2 * full_group
    work = PROJECTION_WORK.get(b.device.type, PROJECTION_WORK["cpu"])
    slices = {big: min(n_params, max(PROJECTION_MIN_COLUMNS, work // big))}
    if b.device.type == "cuda":
        # The full job's pass itself, all of D: the budget that sized the group leaves room
        # for it, and a slice would time launches rather than the fused kernel.
        slices = {big: n_params}
        repeats = 1
    stage_rows = max(rows for rows, _ in f["projection_calls"])
    points: dict[int, dict[str, Any]] = {}
    if 2 * stage_rows <= big:
        seconds = [t for rows, t in f["projection_calls"] if rows == stage_rows]
        points[stage_rows] = {"seconds": statistics.mean(seconds), "timed_on": "the stage"}
    elif big > 2:
        slices[2] = max(1, n_params // PROJECTION_SLICE)
    timed = b.run(
        "projection fit",
        lambda: {rows: scaled(rows, part) for rows, part in slices.items()},
        len(slices),
        unit="calls",
    )
    for rows, part in slices.items():
        points[rows] = {"seconds": timed[rows], "timed_on": f"{part:,} of D, scaled"}
    ordered = sorted((rows, point["seconds"]) for rows, point in points.items())
    (small, low), (large, high) = ordered[0], ordered[-1]
    per_row = max(0.0, (high - low) / (large - small)) if large > small else 0.0
    fixed = max(0.0, low - small * per_row)
    predicted = sum(fixed + per_row * rows for rows, _ in f["projection_calls"])
    f["full_group_items"] = full_group
    f["projection_fit"] = {
        "fixed_s": fixed,
        "per_row_s": per_row,
        "points": dict(sorted(points.items())),
        "predicted_stage_s": predicted,
    }


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
                out / "eval" / name,
                tuned_model=tuned,
                batch_size=batching,
                progress=b.events.progress,
            ),
            EVAL_RUNS * len(chosen),
            unit="decodings",
        )


# --- lengths and the extrapolation ----------------------------------------------------------


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


# --- the report -----------------------------------------------------------------------------


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
