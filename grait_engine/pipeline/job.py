"""What every job kind shares about its stages: the bookkeeping and the cache keys.

``Job`` carries a tune job's config, directories, callbacks, timings and content keys, and
names each stage's directory ``cache_dir/stages/<stage>-<hash>`` (``Job.stage_dir``). The
hash covers the model revision, the training dataset's sha256, the model's dtype, device
kind and quantization (``model_compute``: outputs computed in bfloat16 on a GPU are never
reused by a float32 CPU job, nor the reverse), that stage's knobs, the upstream stage
hashes and the seed. ``base_eval_cache`` is where M0's predictions on a test set are
cached, shared by tune and evaluation jobs; ``JobCancelled`` is a cancel seen between two
stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grait_engine.artifacts import atomic_write_json, config_hash, sha256_file
from grait_engine.job_folder import STAGES_FILE
from grait_engine.pipeline.config import JobConfig
from grait_engine.pipeline.runtime import RuntimeConfig
from grait_engine.stages import StageCallbacks, StageCancelled, StageClock, StageResult

StageResultT = TypeVar("StageResultT", bound=StageResult)


class JobCancelled(StageCancelled):
    """A cancel seen between two stages: the next stage (named in the message) never ran."""


@dataclass
class Job:
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
