"""Run a whole tune job locally: probe -> split -> (grait: features -> select; craft:
rehearse -> reprobe) -> train -> evaluate.

This module holds the stage chain (``run_job``) and the stages every method runs (probe,
split, train, evaluate) and the report; the per-method training data (features and
selection, CRaFT's rehearsal) is ``method_data``, the stage directories, keys and timings
are ``job.Job``. Each stage writes under ``cache_dir/stages/<stage>-<hash>`` (see ``job``),
so a job differing only in selection or weighting reuses the probe and features (the stage
functions skip a complete directory whose inputs hash the same). The model is loaded once,
straight onto its device; every stage works on that one copy. The report goes
to ``out_dir/report.json`` and ``out_dir/report.md``; evaluation outputs to ``out_dir/eval``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from grait_engine.artifacts import sha256_file
from grait_engine.job_folder import EVAL_DIR, METRICS_FILE
from grait_engine.methods import MethodExamples
from grait_engine.pipeline.config import JobConfig
from grait_engine.pipeline.job import Job, base_eval_cache, model_compute
from grait_engine.pipeline.method_data import method_examples
from grait_engine.pipeline.outputs import MetricLog, copy_job_outputs
from grait_engine.pipeline.report import weight_summary, write_report
from grait_engine.records.item import Item
from grait_engine.stages import (
    CancelFn,
    MetricFn,
    NoticeFn,
    ProgressFn,
    StageCallbacks,
    StageEventFn,
)


def run_job(
    config: JobConfig,
    out_dir: str | os.PathLike[str],
    cache_dir: str | os.PathLike[str],
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    *,
    job_id: str | None = None,
    on_metric: MetricFn | None = None,
    notice: NoticeFn | None = None,
    on_stage: StageEventFn | None = None,
) -> dict[str, Any]:
    """Run every stage of ``config`` and write the report; returns the report dict.

    ``progress(stage, done, total, message)`` and ``cancel()`` are passed to the stages
    (a cancel raises the stage's ``...Cancelled`` error, keeping finished work cached);
    ``on_metric(name, step, value)`` receives ``train/loss`` and ``train/lr`` per step;
    ``notice(stage, message)`` hears what a user should know that is not an error (a batch
    halved after running out of memory); ``on_stage(event, stage, data)`` hears every stage
    of the report start and finish, cached ones included (``stages.StageClock``: ``data``
    of ``stage_finished`` is the report's entry). ``job_id`` (optional) is echoed as
    ``report["job"]["id"]``. The model is loaded once; the runtime settings
    (``config.runtime``) pick batch sizes, the memory budget and TF32.

    Besides the report, ``out_dir`` receives what a reader of the job needs without the
    stage cache (see ``outputs.copy_job_outputs``): ``split.json``, ``selection.json``
    (grait), ``metrics.jsonl`` (the training curves) and ``adapter/`` (the tuned LoRA).
    """
    from grait_engine.modeling import ModelSpec, load_model
    from grait_engine.records.jsonl import read_items

    callbacks = StageCallbacks(progress, cancel, on_metric, notice, on_stage)
    job = Job(config, Path(cache_dir), Path(out_dir), callbacks)
    items = read_items(config.training_dataset, config.task)  # type: ignore[arg-type]
    if config.shots_dataset is not None:  # METHOD.md: shots from a dev split, else 0-shot
        job.shots = read_items(config.shots_dataset, config.task)  # type: ignore[arg-type]
    spec = ModelSpec(
        str(config.model_path),
        device=config.device,
        dtype=config.dtype,
        quantization=config.runtime.quantization,
    )
    model, tokenizer = load_model(spec)
    compute = model_compute(model, config.runtime)
    job.batch_size = config.runtime.batch_for(compute["device"])
    root = [config.model_revision, sha256_file(config.training_dataset), config.task, compute]
    job.root = [config.model_revision, config.task, compute]
    probe_dir = _probe(job, model, tokenizer, items, root)
    split_doc = _split(job, probe_dir)
    examples = method_examples(job, model, tokenizer, items, probe_dir, split_doc, root)
    tuned = _train(job, model, tokenizer, items, examples)
    evals = _evaluate(job, tuned, tokenizer, Path(out_dir))
    report = _report(config, split_doc, examples, job.stages, evals)
    if job_id is not None:
        report["job"] = {"id": job_id, **report["job"]}
    copy_job_outputs({stage: job.stage_path(stage) for stage in job.keys}, Path(out_dir))
    write_report(Path(out_dir), report)
    return report


def _probe(job: Job, model: Any, tokenizer: Any, items: list[Item], root: list[Any]) -> Path:
    from grait_engine.probe.stage import run_probe

    c, cb = job.config, job.callbacks
    shots_sha = None if c.shots_dataset is None else sha256_file(c.shots_dataset)
    out = job.stage_dir("probe", [*root, c.probe.to_dict(), c.seed, shots_sha])
    job.timed(
        "probe",
        lambda: run_probe(
            model,
            tokenizer,
            items,
            out,
            config=c.probe,
            shots=job.shots,
            seed=c.seed,
            model_revision=c.model_revision,
            batch_size=job.batch_size,
            callbacks=cb,
        ),
    )
    return out


def _split(job: Job, probe_dir: Path) -> dict[str, Any]:
    from grait_engine.split.stage import run_split

    out = job.stage_dir("split", [job.keys["probe"], job.config.tau])
    result = job.timed(
        "split", lambda: run_split(probe_dir, out, job.config.tau, callbacks=job.callbacks)
    )
    split_doc: dict[str, Any] = json.loads(result.path.read_text())
    return split_doc


def _train(
    job: Job, model: Any, tokenizer: Any, items: list[Item], examples: MethodExamples
) -> Any:
    """The weighted LoRA fine-tune; returns the tuned (peft) model."""
    from grait_engine.training.loss import Example
    from grait_engine.training.reweight import Reweighting
    from grait_engine.training.stage import run_training

    c, cb = job.config, job.callbacks
    by_id = {item.id: item for item in items}
    train = [Example(by_id[i], refuse, weight) for i, refuse, weight in examples.entries]
    reweighting = None
    if c.selection is not None and c.selection.weighting == "dynamic":
        reweighting = Reweighting(
            c.selection.temperature,
            c.selection.sign,
            c.selection.mean_weight,
            c.selection.reweight_every,
            c.features.dim,
            c.features.precondition_eps,
            c.seed,
        )
    parts = [job.keys["split"], job.keys.get("select"), examples.entries, c.seed]
    out = job.stage_dir("train", [c.model_revision, parts, c.resolved()["training"]])
    train_callbacks = replace(cb, metric=MetricLog(out / METRICS_FILE, cb.metric))
    result = job.timed(
        "train",
        lambda: run_training(
            model,
            tokenizer,
            train,
            c.training,
            out,
            seed=c.seed,
            model_revision=c.model_revision,
            callbacks=train_callbacks,
            reweighting=reweighting,
        ),
    )
    return result.model


def _evaluate(job: Job, tuned: Any, tokenizer: Any, out_dir: Path) -> dict[str, Any]:
    """Evaluate M0 (basic, refuse) and the tuned model on every test set."""
    from grait_engine.evaluation.evaluate import PREDICTIONS, cached_rates, evaluate_set
    from grait_engine.lora import cast_lora
    from grait_engine.memory import Batching
    from grait_engine.records.jsonl import read_items

    c, cb = job.config, job.callbacks
    clock = job.start("evaluate")
    # No update follows: decode with the LoRA in the model's dtype (see lora.cast_lora).
    cast_lora(tuned, next(tuned.get_base_model().parameters()).dtype)
    batching = Batching(job.batch_size, "evaluate", cb.notice)
    blocks: dict[str, Any] = {}
    base_cached = True
    for name, path in c.eval_datasets.items():
        test = read_items(path, c.task)  # type: ignore[arg-type]
        base_cache = base_eval_cache(job.cache_dir, job.root, path)
        base_cached &= all(
            cached_rates(test, base_cache / run / PREDICTIONS) is not None
            for run in ("init_basic", "init_refuse")
        )
        blocks[name] = evaluate_set(
            tuned,
            tokenizer,
            test,
            out_dir / EVAL_DIR / name,
            tuned_model=tuned,
            batch_size=batching,
            progress=cb.progress,
            cancel=cb.cancel,
            base_cache=base_cache,
        )
    # The tuned model is always decoded; "base_cached": M0's predictions were reused.
    job.stages["evaluate"] = clock.finish(False, base_cached=base_cached)
    return blocks


def _report(
    config: JobConfig,
    split_doc: dict[str, Any],
    examples: MethodExamples,
    stages: dict[str, dict[str, Any]],
    evals: dict[str, Any],
) -> dict[str, Any]:
    """The report.json document (API.md)."""
    idk_weights = [w for _, refuse, w in examples.entries if refuse]
    variant = config.selection.variant if config.selection is not None else None
    return {
        "job": {
            "method": config.method,
            "model": config.model,
            "task": config.task,
            "seed": config.seed,
            "config": config.resolved(),
        },
        "split": {k: split_doc[k] for k in ("n_pool", "n_ik", "n_idk", "tau")},
        "selection": {
            "n_ik": examples.n_ik,
            "n_idk": examples.n_idk,
            "variant": variant,
            "weights": weight_summary(idk_weights),
            "notes": list(examples.notes),
        },
        "stages": stages,
        "eval": evals,
    }
