"""The ``generate`` job: a tuned job's model answers a few questions, next to the base
model (``POST /v1/jobs/{id}/generations``, ``grait ask JOB_ID``).

Runs in the job's child (``execute.KIND_RUNNERS["generate"]``). Reads the stored config
``{"kind": "generate", "model", "task", "source_job_id", "questions", "runtime"}``, loads
the base model as the source job did (its runtime settings: batch size, quantization;
the worker's device and dtype), and answers with ``grait_engine.pipeline.ask.ask``: the
evaluation's prompts, greedy decoding and refusal rule. Writes ``answers.json`` and
``report.json`` (both the ``ask`` result) into the job's folder and returns that result.
"""

from __future__ import annotations

from typing import Any

from grait_engine.artifacts import atomic_write_json
from grait_engine.job_folder import ANSWERS_FILE, REPORT_FILE
from worker.compute import check_quantization
from worker.job_context import JobContext, JobInputError

STAGE = "generate"


def run(ctx: JobContext) -> dict[str, Any]:
    """Answer the job's questions; returns ``{"prompts", "max_new_tokens", "answers"}``.

    Raises JobInputError for a bad question, a question longer than the model's context,
    a bad runtime setting or a source job without its adapter (the job fails as
    ``invalid_config``); JobCancelled when a cancel was asked before decoding."""
    from grait_engine.pipeline.ask import AskError, ask
    from grait_engine.pipeline.job import JobCancelled
    from grait_engine.probe.batching import PromptTooLongError
    from grait_engine.stages import StageClock

    config = ctx.row.config
    adapter = ctx.source_adapter()
    if adapter is None:
        raise JobInputError("source_job_id", "a generate job needs a succeeded tune job")
    runtime = job_runtime(ctx)
    clock = StageClock(STAGE, ctx.recorder.on_stage)  # the job's one stage
    ctx.recorder.progress(STAGE, 0, 1, "loading the model")
    model, tokenizer = load_base(ctx, runtime.quantization)
    if ctx.recorder.cancel_requested():
        raise JobCancelled("cancelled before decoding")
    try:
        result = ask(
            model,
            tokenizer,
            config["task"],
            config["questions"],
            adapter,
            batch_size=runtime.batch_for(ctx.compute.device_type),
            notice=ctx.recorder.notice,
        )
    except AskError as error:
        raise JobInputError(error.field, error.message) from None
    except PromptTooLongError as error:
        raise JobInputError("questions", str(error)) from None
    atomic_write_json(ctx.out_dir / ANSWERS_FILE, result)
    atomic_write_json(ctx.out_dir / REPORT_FILE, result)
    ctx.recorder.progress(STAGE, 1, 1, f"{len(result['answers'])} question(s) answered")
    clock.finish(False)
    return result


def job_runtime(ctx: JobContext) -> Any:
    """The job's ``RuntimeConfig`` (stored ``runtime``, the worker's defaults where unset);
    JobInputError naming ``runtime.<setting>`` for a bad value."""
    from grait_engine.errors import FieldError
    from grait_engine.pipeline.runtime import RuntimeConfig

    try:
        stored = RuntimeConfig.from_dict(ctx.row.config.get("runtime") or {})
    except FieldError as error:
        raise JobInputError(f"runtime.{error.field}", error.message) from None
    return stored.with_defaults(ctx.settings.batch_size, ctx.settings.memory_budget_mb)


def load_base(ctx: JobContext, quantization: str | None) -> tuple[Any, Any]:
    """The job's base model and tokenizer on the worker's device and dtype (``quantization``
    as the tune job loaded it, or None); ComputeError where this worker cannot quantize."""
    from grait_engine.modeling import ModelSpec, load_model

    check_quantization(quantization, ctx.compute)
    spec = ModelSpec(
        ctx.model_path(),
        device=ctx.compute.device,
        dtype=ctx.compute.dtype,
        quantization=quantization,
    )
    return load_model(spec)
