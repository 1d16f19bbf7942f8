"""Run a whole job locally: probe -> split -> (grait: features -> select; craft: rehearse ->
reprobe) -> train -> evaluate.

Each stage writes under ``cache_dir/stages/<stage>-<hash>``; the hash covers the model
revision, the training dataset's sha256, the model's dtype, device kind and quantization
(outputs computed in bfloat16 on a GPU are never reused by a float32 CPU job, nor the
reverse), that stage's knobs, the upstream stage hashes and the seed, so a job differing
only in selection or weighting reuses the probe and features (the stage functions skip a
complete directory whose inputs hash the same). The model is loaded once, straight onto
its device; every stage works on that one copy. The report goes
to ``out_dir/report.json`` and ``out_dir/report.md``; evaluation outputs to ``out_dir/eval``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from grait_engine.artifacts import atomic_write_json, config_hash, read_manifest, sha256_file
from grait_engine.job_folder import EVAL_DIR, METRICS_FILE, STAGES_FILE
from grait_engine.methods import MethodExamples, build_examples
from grait_engine.pipeline.config import JobConfig
from grait_engine.pipeline.outputs import MetricLog, copy_job_outputs
from grait_engine.pipeline.report import weight_summary, write_report
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.records.item import Item
from grait_engine.stages import (
    CancelFn,
    MetricFn,
    NoticeFn,
    ProgressFn,
    StageCallbacks,
    StageCancelled,
    StageClock,
    StageEventFn,
    StageResult,
)

StageResultT = TypeVar("StageResultT", bound=StageResult)


class JobCancelled(StageCancelled):
    """A cancel seen between two stages: the next stage (named in the message) never ran."""


@dataclass
class _Job:
    """What the stages share: config, directories, callbacks, timings and content keys."""

    config: JobConfig
    cache_dir: Path
    out_dir: Path
    callbacks: StageCallbacks
    batch_size: int = 8
    shots: list[Any] = field(default_factory=list)  # the probe's few-shot pool (dev split)
    root: list[Any] = field(default_factory=list)  # model revision and compute of the keys
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def stage_dir(self, stage: str, parts: list[Any]) -> Path:
        """``cache_dir/stages/<stage>-<hash of parts>``; the key is kept for downstream."""
        self.keys[stage] = config_hash(parts, 16)
        # Readers of a running job (the service's checkpoint listing) find the stage here.
        paths = {name: str(self.stage_path(name)) for name in self.keys}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out_dir / STAGES_FILE, paths)
        return self.stage_path(stage)

    def stop_if_cancelled(self, stage: str) -> None:
        """Raise JobCancelled before ``stage`` starts if a cancel was asked (stages check
        only at their batch boundaries, so a cancel near a stage's end is seen here)."""
        if self.callbacks.cancelled():
            raise JobCancelled(f"cancelled before {stage}")

    def stage_path(self, stage: str) -> Path:
        """The directory of a stage whose key is known."""
        return self.cache_dir / "stages" / f"{stage}-{self.keys[stage]}"

    def start(self, stage: str) -> StageClock:
        """Check for a cancel, then start ``stage``'s clock (``on_stage`` hears it start)."""
        self.stop_if_cancelled(stage)
        return StageClock(stage, self.callbacks.on_stage)

    def timed(self, stage: str, work: Callable[[], StageResultT]) -> StageResultT:
        """Run ``work()`` as ``stage``: record ``{seconds, cached}`` for the report (cached:
        the result was ``skipped``) and tell ``on_stage`` (started, finished with that
        entry); returns ``work``'s result."""
        clock = self.start(stage)
        result = work()
        self.stages[stage] = clock.finish(result.skipped)
        return result


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
    job = _Job(config, Path(cache_dir), Path(out_dir), callbacks)
    items = read_items(config.training_dataset, config.task)  # type: ignore[arg-type]
    if config.shots_dataset is not None:  # METHOD.md: shots from a dev split, else 0-shot
        job.shots = read_items(config.shots_dataset, config.task)  # type: ignore[arg-type]
    spec = ModelSpec(
        str(config.model_path), device=config.device, dtype=config.dtype,
        quantization=config.runtime.quantization,
    )  # fmt: skip
    model, tokenizer = load_model(spec)
    compute = model_compute(model, config.runtime)
    job.batch_size = config.runtime.batch_for(compute["device"])
    root = [config.model_revision, sha256_file(config.training_dataset), config.task, compute]
    job.root = [config.model_revision, config.task, compute]
    probe_dir = _probe(job, model, tokenizer, items, root)
    split_doc = _split(job, probe_dir)
    examples = _examples(job, model, tokenizer, items, probe_dir, split_doc, root)
    tuned = _train(job, model, tokenizer, items, examples)
    evals = _evaluate(job, tuned, tokenizer, Path(out_dir))
    report = _report(config, split_doc, examples, job.stages, evals)
    if job_id is not None:
        report["job"] = {"id": job_id, **report["job"]}
    copy_job_outputs({stage: job.stage_path(stage) for stage in job.keys}, Path(out_dir))
    write_report(Path(out_dir), report)
    return report


def model_compute(model: Any, runtime: RuntimeConfig) -> dict[str, Any]:
    """What the stage keys need about how a job computes with the loaded ``model`` under
    ``runtime``; turns TF32 on or off (CUDA). Shared by every job kind, so their keys agree."""
    import torch

    param = next(model.parameters())
    if param.device.type == "cuda":
        # A job runs in its own process (the worker's child): this global is the job's.
        torch.backends.cuda.matmul.allow_tf32 = runtime.tf32
        torch.backends.cudnn.allow_tf32 = runtime.tf32
    return {
        "dtype": str(param.dtype).removeprefix("torch."),
        "device": param.device.type,
        "quantization": runtime.quantization,
        "tf32": bool(runtime.tf32 and param.device.type == "cuda"),
    }


def base_eval_cache(cache_dir: Path, root: list[Any], test_path: Path) -> Path:
    """Where M0's predictions on the test set ``test_path`` are cached: ``root`` is
    ``[model revision, task, model_compute(...)]``. M0's predictions depend on the model,
    its compute, the test set and the decoding (greedy, budget from the tokenizer): every
    job on them (tune or evaluate) shares one cached copy."""
    key = config_hash([root, sha256_file(test_path), "greedy-0shot"], 16)
    return cache_dir / "stages" / f"base_eval-{key}"


def _probe(job: _Job, model: Any, tokenizer: Any, items: list[Item], root: list[Any]) -> Path:
    from grait_engine.probe.stage import run_probe

    c, cb = job.config, job.callbacks
    shots_sha = None if c.shots_dataset is None else sha256_file(c.shots_dataset)
    out = job.stage_dir("probe", [*root, c.probe.to_dict(), c.seed, shots_sha])
    job.timed(
        "probe",
        lambda: run_probe(
            model, tokenizer, items, out, config=c.probe, shots=job.shots, seed=c.seed,
            model_revision=c.model_revision, batch_size=job.batch_size, callbacks=cb,
        ),
    )  # fmt: skip
    return out


def _split(job: _Job, probe_dir: Path) -> dict[str, Any]:
    from grait_engine.split.stage import run_split

    out = job.stage_dir("split", [job.keys["probe"], job.config.tau])
    result = job.timed(
        "split", lambda: run_split(probe_dir, out, job.config.tau, callbacks=job.callbacks)
    )
    split_doc: dict[str, Any] = json.loads(result.path.read_text())
    return split_doc


def _examples(
    job: _Job, model: Any, tokenizer: Any, items: list[Item], probe_dir: Path,
    split_doc: dict[str, Any], root: list[Any],
) -> MethodExamples:  # fmt: skip
    """The method's training entries (running features and selection for grait)."""
    from grait_engine.probe.store import read_probe
    from grait_engine.split.stage import load_split

    c = job.config
    split = load_split(job.cache_dir / "stages" / f"split-{job.keys['split']}")
    if c.method == "grait":
        selection = _select(job, model, tokenizer, items, split, split_doc, root)
        return build_examples("grait", split, c.n_ik, c.n_idk, c.seed, selection=selection)
    certainty = None
    if c.method in ("corcer_rait", "craft"):
        certainty = {r["id"]: float(r["certainty"]) for r in read_probe(probe_dir)[1]}
    if c.method == "craft":
        assert certainty is not None
        flow, notes = _knowledge_flow(job, model, tokenizer, items, split_doc, certainty)
        examples = build_examples(
            "craft", split, c.n_ik, c.n_idk, c.seed, certainty=certainty, flow=flow
        )
        return MethodExamples("craft", examples.entries, (*notes, *examples.notes))
    return build_examples(c.method, split, c.n_ik, c.n_idk, c.seed, certainty=certainty)


def _knowledge_flow(
    job: _Job, model: Any, tokenizer: Any, items: list[Item], split_doc: dict[str, Any],
    certainty: dict[str, float],
) -> tuple[dict[str, float], list[str]]:  # fmt: skip
    """CRaFT's rehearsal and second probe: ``({id: c~_i - c_i}, notes)`` over the pool.

    Stage ``rehearse`` fine-tunes a LoRA on M0 over the rehearsal set (gold answers, the
    job's training recipe); stage ``reprobe`` probes that rehearsed model like stage 1.
    Both are cached stages. Afterwards the LoRA is taken out again: ``model`` is M0.
    """
    from grait_engine.lora import remove_lora
    from grait_engine.methods import rehearsal_ids
    from grait_engine.probe.stage import run_probe
    from grait_engine.probe.store import read_probe
    from grait_engine.training.loss import Example
    from grait_engine.training.stage import run_training

    c, cb = job.config, job.callbacks
    correctness = {k: float(v) for k, v in split_doc["correctness"].items()}
    ids, notes = rehearsal_ids(correctness, certainty, c.tau)
    by_id = {item.id: item for item in items}
    rehearsal = [Example(by_id[i], False, 1.0) for i in ids]
    rehearse_out = job.stage_dir(
        "rehearse", [job.keys["probe"], ids, c.resolved()["training"], c.seed]
    )
    trained = job.timed(
        "rehearse",
        lambda: run_training(
            model, tokenizer, rehearsal, c.training, rehearse_out, seed=c.seed,
            model_revision=c.model_revision, callbacks=cb.renamed("rehearse"),
        ),
    )  # fmt: skip
    reprobe_out = job.stage_dir("reprobe", [job.keys["rehearse"], c.probe.to_dict(), c.seed])
    try:
        job.timed(
            "reprobe",
            lambda: run_probe(
                trained.model, tokenizer, items, reprobe_out, config=c.probe, shots=job.shots,
                seed=c.seed, model_revision=f"{c.model_revision}+rehearse-{job.keys['rehearse']}",
                batch_size=job.batch_size, callbacks=cb.renamed("reprobe"),
            ),
        )  # fmt: skip
    finally:
        remove_lora(trained.model)  # back to M0 for the final fine-tune
    after = {r["id"]: float(r["correctness"]) for r in read_probe(reprobe_out)[1]}
    notes.append(f"rehearsal on {len(ids)} items")
    return {i: after[i] - correctness[i] for i in correctness}, notes


def _select(
    job: _Job, model: Any, tokenizer: Any, items: list[Item], split: Any, split_doc: dict[str, Any],
    root: list[Any],
) -> dict[str, Any]:  # fmt: skip
    """Features (keyed by the probe, not the split) then selection; returns selection.json."""
    from grait_engine.features.stage import SpeedSettings, run_features
    from grait_engine.selection.stage import run_selection

    c, cb = job.config, job.callbacks
    selection = c.selection
    assert selection is not None
    features_out = job.stage_dir(
        "features", [*root, job.keys["probe"], c.features.to_dict(), c.seed]
    )
    speed = SpeedSettings(batch_size=job.batch_size, memory_budget_mb=c.runtime.memory_budget_mb)
    features = job.timed(
        "features",
        lambda: run_features(
            c.features, model, tokenizer, items, split_doc["correctness"], features_out,
            seed=c.seed, speed=speed, callbacks=cb,
        ),
    )  # fmt: skip
    # What "auto" became on this machine (model dtype, device kind, projection dtype).
    manifest = read_manifest(features.directory) or {}
    job.stages["features"]["compute"] = manifest.get("compute")
    parts = [job.keys["features"], job.keys["split"], selection.knobs(), c.seed]
    select_out = job.stage_dir("select", parts)
    result = job.timed(
        "select",
        lambda: run_selection(
            selection, split, features.features_dir, select_out, seed=c.seed, callbacks=cb,
        ),
    )  # fmt: skip
    selection_doc: dict[str, Any] = json.loads(result.path.read_text())
    return selection_doc


def _train(
    job: _Job, model: Any, tokenizer: Any, items: list[Item], examples: MethodExamples
) -> Any:
    """The weighted LoRA fine-tune; returns the tuned (peft) model."""
    from grait_engine.training.loss import Example
    from grait_engine.training.stage import run_training

    c, cb = job.config, job.callbacks
    by_id = {item.id: item for item in items}
    train = [Example(by_id[i], refuse, weight) for i, refuse, weight in examples.entries]
    parts = [job.keys["split"], job.keys.get("select"), examples.entries, c.seed]
    out = job.stage_dir("train", [c.model_revision, parts, c.resolved()["training"]])
    train_callbacks = replace(cb, metric=MetricLog(out / METRICS_FILE, cb.metric))
    result = job.timed(
        "train",
        lambda: run_training(
            model, tokenizer, train, c.training, out, seed=c.seed,
            model_revision=c.model_revision, callbacks=train_callbacks,
        ),
    )  # fmt: skip
    return result.model


def _evaluate(job: _Job, tuned: Any, tokenizer: Any, out_dir: Path) -> dict[str, Any]:
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
            tuned, tokenizer, test, out_dir / EVAL_DIR / name, tuned_model=tuned,
            batch_size=batching, progress=cb.progress, cancel=cb.cancel,
            base_cache=base_cache,
        )  # fmt: skip
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
