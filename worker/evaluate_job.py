"""The runner of ``evaluate`` jobs (``KIND_RUNNERS["evaluate"]``), in the job's child process.

It reads the stored config (``app.jobs.evaluations``), fills in the worker's runtime
defaults like a tune job (``RuntimeConfig.with_defaults``), checks that this worker can run
the requested quantization, and calls ``grait_engine.pipeline.evaluation_job``: with the
source job's adapter when the job evaluates a tuned model, else the base model alone with
its knowledge probe. M0's predictions and probes share the tenant's stage cache with its
tune jobs.
"""

from __future__ import annotations

from typing import Any

from worker.compute import check_quantization
from worker.job_context import JobContext, JobInputError, log_compute


def run(ctx: JobContext) -> dict[str, Any]:
    """Evaluate the job's model on its eval datasets; returns the report (see the engine's
    ``run_evaluation``). Raises JobInputError for a bad stored setting or a missing
    adapter, and the engine's ``...Cancelled`` errors when a cancel is seen."""
    from grait_engine.errors import FieldError
    from grait_engine.pipeline.evaluation_job import run_evaluation
    from grait_engine.pipeline.runtime import RuntimeConfig
    from grait_engine.probe.config import ProbeConfig

    config = ctx.row.config
    try:
        runtime = RuntimeConfig.from_dict(dict(config.get("runtime") or {}))
        probe = ProbeConfig.from_dict(dict(config["probe"])) if config.get("probe") else None
    except FieldError as error:
        raise JobInputError(error.field or "config", error.message) from None
    runtime = runtime.with_defaults(ctx.settings.batch_size, ctx.settings.memory_budget_mb)
    check_quantization(runtime.quantization, ctx.compute)
    eval_paths = ctx.row.eval_paths()
    adapter = ctx.source_adapter()
    doing = "evaluates a tuned model" if adapter else "evaluates the base model"
    log_compute(ctx.row.job_id, ctx.compute, runtime, doing)
    resolved = {
        **config,
        "runtime": runtime.to_dict(),
        "device": ctx.compute.device,
        "dtype": ctx.compute.dtype,
    }
    echoed = {
        "id": ctx.row.job_id,
        "model": config["model"],
        "method": ctx.row.method,
        "source_job_id": ctx.row.source_job_id,
        "config": resolved,
    }
    return run_evaluation(
        ctx.model_path(),
        config["task"],
        eval_paths,
        ctx.out_dir,
        ctx.cache_dir,
        adapter_dir=adapter,
        device=ctx.compute.device,
        dtype=ctx.compute.dtype,
        runtime=runtime,
        probe=probe,
        seed=int(config.get("seed", 0)),
        job=echoed,
        progress=ctx.recorder.progress,
        cancel=ctx.recorder.cancel_requested,
        notice=ctx.recorder.notice,
        on_stage=ctx.recorder.on_stage,
    )
