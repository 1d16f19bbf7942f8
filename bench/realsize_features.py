"""The features stage of ``bench/realsize.py`` and its references: ``run_features`` with the
LESS LoRA setting (warmup timed apart from the gradient + projection pass, every
``Projector.project`` call timed), a plain batched forward+backward over the same sequences,
and a fit of one projection pass's cost at the full job's group size.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from realsize_bench import Bench, Clock

from grait_engine.features.config import FeaturesConfig
from grait_engine.features.projection import Projector
from grait_engine.features.sequences import collate, encode_pair, per_sample_loss
from grait_engine.features.stage import SpeedSettings, run_features
from grait_engine.lora import (
    LLAMA_ATTENTION,
    attach_lora,
    cast_lora,
    lora_parameters,
    remove_lora,
)
from grait_engine.memory import budget_bytes
from grait_engine.records.item import Item

# The LESS warmup/gradient LoRA (princeton-nlp/LESS scripts/train/base_training_args.sh),
# which GRAIT's features follow: rank 128, alpha 512, dropout 0.1 on the attention projections.
FEATURES = FeaturesConfig(
    dim=8192, lora_r=128, lora_alpha=512.0, lora_dropout=0.1, target_modules=LLAMA_ATTENTION
)
# The projection fit times 2 rows on D / PROJECTION_SLICE rows of P, and the full job's
# group on PROJECTION_WORK[device] / rows rows of P (at least PROJECTION_MIN_COLUMNS), then
# scales to D (bigger slices on CUDA, where a small one takes milliseconds).
PROJECTION_SLICE = 8
PROJECTION_WORK = {"cpu": 2**24, "cuda": 2**30}
PROJECTION_MIN_COLUMNS = 16384


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
