"""Evaluation jobs: a base model, and optionally a stored LoRA adapter, on new test sets.

``run_evaluation`` loads the base model once and, for every eval set, evaluates M0 with
the basic and the refuse prompt (``init_basic``, ``init_refuse``) and, given an adapter
(a succeeded tune job's ``adapter/``), the tuned model (``tuned``), exactly as a tune job's
``evaluate`` stage does (``evaluation.evaluate_set``): same prompts, decoding, grading and
``eval`` block shape, so report tables, metrics and comparisons read both alike. M0's
predictions come from, and go to, the cache a tune job uses (``job.base_eval_cache``).

Without an adapter (the "what does my model know" report before any tuning) the job also
probes the base model's knowledge of every eval set (``probe.run_probe``, 0-shot, default
knobs, cached as a ``probe`` stage keyed like a tune job's probe) and reports a
correctness histogram and the share of items at or above ``tau``.

The job folder receives ``eval/<name>/...`` (predictions per model), ``knowledge/<name>.json``
(base-only: correctness per item), ``report.json``, ``report.md`` and ``plots/plane.png``
(these three written by ``evaluation_report``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from grait_engine.artifacts import (
    atomic_write_json,
    config_hash,
    sha256_file,
)
from grait_engine.job_folder import EVAL_DIR, KNOWLEDGE_DIR
from grait_engine.pipeline.evaluation_report import write_evaluation_report
from grait_engine.pipeline.job import JobCancelled, base_eval_cache, model_compute
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.probe.config import ProbeConfig
from grait_engine.split.stage import DEFAULT_TAU, check_tau
from grait_engine.stages import (
    CancelFn,
    NoticeFn,
    ProgressFn,
    StageCallbacks,
    StageClock,
    StageEventFn,
)

HISTOGRAM_BINS = 10


def knowledge_probe_config() -> ProbeConfig:
    """The probe of a base-model evaluation: default knobs, 0-shot (no dev split given)."""
    return ProbeConfig(choice_shots=0, open_shots=0)


def run_evaluation(
    model_path: str | os.PathLike[str],
    task: str,
    eval_datasets: dict[str, Path],
    out_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    *,
    adapter_dir: Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    runtime: RuntimeConfig | None = None,
    probe: ProbeConfig | None = None,
    tau: float = DEFAULT_TAU,
    seed: int = 0,
    job: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    notice: NoticeFn | None = None,
    on_stage: StageEventFn | None = None,
) -> dict[str, Any]:
    """Evaluate the base model at ``model_path`` (and the adapter in ``adapter_dir``, if
    given) on ``eval_datasets`` (``{name: JSONL path}`` of ``task`` items); returns the report.

    ``runtime`` picks batch size, TF32 and 4-bit loading as for a tune job. Base-only runs
    also probe each set with ``probe`` (default ``knowledge_probe_config()``) at ``seed``
    and split the histogram at ``tau``. ``job`` (optional: ``id``, ``model``, ``method``,
    ``source_job_id``, ``config``) is echoed in ``report["job"]``. ``progress`` /
    ``cancel`` / ``notice`` / ``on_stage`` as for ``run_job``: a cancel raises the stage's
    ``...Cancelled`` error or ``JobCancelled`` between stages; ``on_stage`` hears each stage
    of the report (``probe`` when base-only, ``evaluate``) start and finish. Side effects:
    writes the job folder ``out_dir`` (module doc) and the shared stage cache ``cache_dir``.
    """
    from grait_engine.modeling import ModelSpec, load_model

    runtime = runtime or RuntimeConfig()
    callbacks = StageCallbacks(progress, cancel, notice=notice, on_stage=on_stage)
    tau = check_tau(tau)
    out, cache = Path(out_dir), Path(cache_dir)
    items = {name: _read(path, task) for name, path in eval_datasets.items()}
    spec = ModelSpec(str(model_path), device=device, dtype=dtype, quantization=runtime.quantization)
    model, tokenizer = load_model(spec)
    compute = model_compute(model, runtime)
    revision = str(model.grait_revision)
    batch_size = runtime.batch_for(compute["device"])
    stages: dict[str, dict[str, Any]] = {}
    knowledge: dict[str, Any] | None = None
    if adapter_dir is None:
        probe_config = probe or knowledge_probe_config()
        _stop_if_cancelled(callbacks, "probe")
        clock = StageClock("probe", callbacks.on_stage)
        knowledge, cached = {}, True
        for name, path in eval_datasets.items():
            parts = [revision, sha256_file(path), task, compute, probe_config.to_dict(), seed]
            knowledge[name], reused = _knowledge(
                model,
                tokenizer,
                items[name],
                cache,
                parts,
                out,
                name,
                probe_config,
                seed,
                tau,
                batch_size,
                callbacks,
            )
            cached &= reused
        stages["probe"] = clock.finish(cached)
    else:
        from grait_engine.lora import cast_lora, load_adapter

        model = load_adapter(model, adapter_dir)
        # No update follows: decode with the LoRA in the model's dtype (see lora.cast_lora).
        cast_lora(model, next(model.get_base_model().parameters()).dtype)
    _stop_if_cancelled(callbacks, "evaluate")
    clock = StageClock("evaluate", callbacks.on_stage)
    evals, base_cached = _evaluate(
        model,
        tokenizer,
        items,
        eval_datasets,
        out,
        cache,
        [revision, task, compute],
        tuned=adapter_dir is not None,
        batch_size=batch_size,
        callbacks=callbacks,
    )
    # Without an adapter nothing is decoded afresh when M0's predictions were cached.
    cached = base_cached and adapter_dir is None
    stages["evaluate"] = clock.finish(cached, base_cached=base_cached)
    report = {
        "job": {"kind": "evaluate", "task": task, "seed": seed, **(job or {})},
        "stages": stages,
        "eval": evals,
    }
    if knowledge is not None:
        report["knowledge"] = knowledge
    write_evaluation_report(out, report)
    return report


def _read(path: Path, task: str) -> list[Any]:
    from grait_engine.records.jsonl import read_items

    return read_items(path, task)  # type: ignore[arg-type]


def _stop_if_cancelled(callbacks: StageCallbacks, stage: str) -> None:
    if callbacks.cancelled():
        raise JobCancelled(f"cancelled before {stage}")


def _evaluate(
    model: Any,
    tokenizer: Any,
    items: dict[str, list[Any]],
    paths: dict[str, Path],
    out: Path,
    cache: Path,
    root: list[Any],
    *,
    tuned: bool,
    batch_size: int,
    callbacks: StageCallbacks,
) -> tuple[dict[str, Any], bool]:
    """The ``eval`` blocks of every set (M0 with the adapter disabled; tuned with it), as
    ``run._evaluate`` computes them, and whether every M0 prediction came from the cache."""
    from grait_engine.evaluation.evaluate import PREDICTIONS, cached_rates, evaluate_set
    from grait_engine.memory import Batching

    batching = Batching(batch_size, "evaluate", callbacks.notice)
    blocks: dict[str, Any] = {}
    base_cached = True
    for name, path in paths.items():
        base_cache = base_eval_cache(cache, root, path)
        base_cached &= all(
            cached_rates(items[name], base_cache / run / PREDICTIONS) is not None
            for run in ("init_basic", "init_refuse")
        )
        blocks[name] = evaluate_set(
            model,
            tokenizer,
            items[name],
            out / EVAL_DIR / name,
            tuned_model=model if tuned else None,
            batch_size=batching,
            progress=callbacks.progress,
            cancel=callbacks.cancel,
            base_cache=base_cache,
        )
    return blocks, base_cached


def _knowledge(
    model: Any,
    tokenizer: Any,
    items: list[Any],
    cache: Path,
    parts: list[Any],
    out: Path,
    name: str,
    config: ProbeConfig,
    seed: int,
    tau: float,
    batch_size: int,
    callbacks: StageCallbacks,
) -> tuple[dict[str, Any], bool]:
    """The knowledge block of one eval set and whether its probe came from the cache.

    The probe directory is keyed like a tune job's probe stage (``run._probe``: model
    revision, dataset sha256, task, compute, knobs, seed, no shots dataset), so a tune job
    that trained on this very file with the same 0-shot probe shares it. Side effect:
    ``out/knowledge/<name>.json`` with the correctness per item id."""
    from grait_engine.probe.stage import run_probe
    from grait_engine.probe.store import read_probe

    directory = cache / "stages" / f"probe-{config_hash([*parts, None], 16)}"
    result = run_probe(
        model,
        tokenizer,
        items,
        directory,
        config=config,
        seed=seed,
        model_revision=parts[0],
        batch_size=batch_size,
        callbacks=callbacks,
    )
    correctness = {r["id"]: float(r["correctness"]) for r in read_probe(directory)[1]}
    atomic_write_json(
        out / KNOWLEDGE_DIR / f"{name}.json", {"tau": tau, "correctness": correctness}
    )
    truths = [(item.meta or {}).get("known") for item in items]
    return knowledge_summary(
        [correctness[item.id] for item in items],
        tau,
        [t if isinstance(t, bool) else None for t in truths],
    ), bool(result.skipped)


def knowledge_summary(
    correctness: list[float], tau: float, known: list[bool | None] | None = None
) -> dict[str, Any]:
    """The report's ``knowledge`` entry of one set from the probe's correctness per item.

    ``{"n", "tau", "bins" (HISTOGRAM_BINS + 1 edges over [0, 1]), "counts" (items per bin;
    the last bin holds 1.0), "known_share" (share of items with correctness >= tau, in %),
    "mean_correctness"}``, plus ``"auroc_known"`` (how well correctness ranks the items that
    ``meta.known`` marks as known; None unless both kinds occur) when every item carries a
    boolean ``known`` (``known``: aligned with ``correctness``). Pure function.
    """
    counts = [0] * HISTOGRAM_BINS
    for value in correctness:
        counts[min(int(value * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    n = len(correctness)
    summary: dict[str, Any] = {
        "n": n,
        "tau": tau,
        "bins": [round(i / HISTOGRAM_BINS, 6) for i in range(HISTOGRAM_BINS + 1)],
        "counts": counts,
        "known_share": 100.0 * sum(1 for c in correctness if c >= tau) / n if n else None,
        "mean_correctness": math.fsum(correctness) / n if n else None,
    }
    if known is not None and n and all(k is not None for k in known):
        from grait_engine.probe.metrics import auroc

        try:
            summary["auroc_known"] = auroc(correctness, [bool(k) for k in known])
        except ValueError:  # one kind only
            summary["auroc_known"] = None
    return summary
