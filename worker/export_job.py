"""The ``export`` job: a tuned job's model as a standalone Hugging Face model
(``POST /v1/jobs/{id}/exports``, ``grait jobs export JOB_ID``).

Runs in the job's child (``execute.KIND_RUNNERS["export"]``). Reads the stored config
``{"kind": "export", "model", "task", "source_job_id", "merge": true}``, loads the base
model on the worker's device in its dtype (never quantized: a merge needs the real
weights), merges the source job's adapter into it and writes ``merged/`` (config,
``model*.safetensors``, tokenizer files) into the job's own folder, where the artifacts
endpoints serve it. ``report.json`` lists the files.
"""

from __future__ import annotations

from typing import Any

from grait_engine.artifacts import atomic_write_json
from grait_engine.job_folder import ADAPTER_DIR, MERGED_DIR, REPORT_FILE
from worker.generate_job import load_base
from worker.job_context import JobContext, JobInputError

STAGE = "export"


def run(ctx: JobContext) -> dict[str, Any]:
    """Merge and save; returns ``{"merged": {"folder", "dtype", "files": [{name,
    size_bytes}], "size_bytes"}, "adapter": {...}}``. Raises JobInputError when the source
    job's adapter is gone or the config asks for no merge; JobCancelled when a cancel was
    asked before the merge."""
    from grait_engine.pipeline.export import export_merged
    from grait_engine.pipeline.job import JobCancelled
    from grait_engine.stages import StageClock

    if ctx.row.config.get("merge") is not True:
        raise JobInputError("merge", "only merge: true is supported")
    adapter = ctx.source_adapter()
    if adapter is None:
        raise JobInputError("source_job_id", "an export job needs a succeeded tune job")
    clock = StageClock(STAGE, ctx.recorder.on_stage)  # the job's one stage
    ctx.recorder.progress(STAGE, 0, 1, "loading the model")
    model, tokenizer = load_base(ctx, None)
    if ctx.recorder.cancel_requested():
        raise JobCancelled("cancelled before the merge")
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    folder = export_merged(model, tokenizer, adapter, ctx.out_dir / MERGED_DIR)
    sizes = {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}
    files = [{"name": f"{MERGED_DIR}/{name}", "size_bytes": size} for name, size in sizes.items()]
    report = {
        "merged": {
            "folder": MERGED_DIR,
            "dtype": dtype,
            "files": files,
            "size_bytes": sum(sizes.values()),
        },
        # The adapter itself stays among the source job's artifacts.
        "adapter": {"job_id": ctx.row.source_job_id, "folder": ADAPTER_DIR},
    }
    atomic_write_json(ctx.out_dir / REPORT_FILE, report)
    ctx.recorder.progress(STAGE, 1, 1, f"merged model saved ({len(files)} files)")
    clock.finish(False)
    return report
