"""The training stage: checkpoints, cancel + resume = uninterrupted, metrics, reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grait_engine.artifacts import read_manifest
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.item import Item
from grait_engine.stages import StageCallbacks
from grait_engine.training.checkpoint import LATEST, STATE_JSON, STATE_TENSORS
from grait_engine.training.config import TrainingConfig
from grait_engine.training.loss import Example
from grait_engine.training.stage import TrainingCancelled, run_training
from grait_engine.training.step import TrainingDiverged

QUESTIONS = ["Capital of France?", "Who wrote Hamlet?", "Spider legs?", "River?", "Sea?"]
EXAMPLES = [
    Example(Item(id=f"q{i}", question=q, answers=(f"answer {i}",)), i % 2 == 1, 0.5 + i / 4)
    for i, q in enumerate(QUESTIONS)
]
# 5 examples, batches of 2 with 2 accumulated -> 2 steps per epoch, 3 epochs -> 6 steps.
CONFIG = TrainingConfig(
    lora_r=4,
    lora_alpha=8.0,
    lr=1e-2,
    epochs=3,
    batch_size=2,
    grad_accum=2,
    checkpoint_every=2,
    warmup_ratio=0.15,
    keep_checkpoints=2,
)


def _train(model_dir: Path, out: Path, *, merge: bool = False, **callbacks):
    """Train CONFIG on EXAMPLES (seed 3) with ``StageCallbacks(**callbacks)``."""
    model, tokenizer = load_model(ModelSpec(str(model_dir)))
    heard = StageCallbacks(**callbacks)
    return run_training(
        model, tokenizer, EXAMPLES, CONFIG, out, seed=3, merge=merge, callbacks=heard
    )


def _adapter(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "adapter_model.safetensors"))


def test_cancel_then_resume_equals_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    metrics: list[tuple[str, int, float]] = []
    full = _train(tiny_model_dir, tmp_path / "full", metric=lambda *m: metrics.append(m))
    assert full.steps == 6 and full.resumed_from is None
    lrs = [v for name, _, v in metrics if name == "train/lr"]
    assert lrs[0] < lrs[1] and lrs[1] == pytest.approx(1e-2)  # warmup, then the peak
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # cosine decay

    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        _train(tiny_model_dir, tmp_path / "cut", cancel=lambda: next(calls) == 3)
    latest = (tmp_path / "cut" / "checkpoints" / LATEST).read_text().strip()
    assert latest == "step-000003"  # the cancel wrote a checkpoint of the last step
    resumed = _train(tiny_model_dir, tmp_path / "cut")
    assert resumed.resumed_from == 3 and resumed.steps == 6
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert resumed.final_loss == pytest.approx(full.final_loss, abs=1e-6)


def test_checkpoints_manifest_and_reuse(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = _train(tiny_model_dir, tmp_path)
    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert checkpoints == ["step-000004", "step-000006"]  # newest two kept
    manifest = read_manifest(tmp_path / "checkpoints" / "step-000006")
    assert manifest is not None and set(manifest["files"]) == {STATE_TENSORS, STATE_JSON}
    state = json.loads((tmp_path / "checkpoints" / "step-000006" / STATE_JSON).read_text())
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (6, 3, 0)
    tensors = load_file(str(tmp_path / "checkpoints" / "step-000006" / STATE_TENSORS))
    assert "rng.cpu" in tensors and any(k.endswith(".exp_avg_sq") for k in tensors)
    top = read_manifest(tmp_path)
    assert top is not None and top["steps"] == 6 and top["inputs_hash"] == result.inputs_hash
    assert set(top["files"]) == {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"}
    again = _train(tiny_model_dir, tmp_path)  # complete: loaded, not trained
    assert again.steps == 6 and again.final_loss == result.final_loss


# Run in a child process: train, and SIGKILL itself after step 3 (checkpoints at 2, 4, 6).
_KILLED_CHILD = """
import os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from tests.engine.training.test_stage import _train

def progress(stage, step, total, message):
    if step == 3:
        os.kill(os.getpid(), signal.SIGKILL)

_train(Path(sys.argv[1]), Path(sys.argv[2]), progress=progress)
"""


def test_sigkilled_run_resumes_to_the_same_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(tiny_model_dir), str(tmp_path / "cut")],
        cwd=root,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    assert (tmp_path / "cut" / "checkpoints" / LATEST).read_text().strip() == "step-000002"
    assert read_manifest(tmp_path / "cut") is None  # not finished
    resumed = _train(tiny_model_dir, tmp_path / "cut")
    full = _train(tiny_model_dir, tmp_path / "full")
    assert resumed.resumed_from == 2
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_merge_writes_a_loadable_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = _train(tiny_model_dir, tmp_path, merge=True)
    merged, tokenizer = load_model(ModelSpec(str(tmp_path / "merged")))
    adapted, _ = load_model(ModelSpec(str(tiny_model_dir)))
    from grait_engine.lora import load_adapter

    adapted = load_adapter(adapted, result.adapter_dir)
    ids = tokenizer(["Question: Capital of France?\nAnswer:"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, adapted(ids).logits, atol=1e-5, rtol=1e-4)
    top = read_manifest(tmp_path)
    assert top is not None and top["merged"] is True
    assert any(name.startswith("merged/") for name in top["files"])


def test_checkpoints_of_other_inputs_are_not_resumed(tiny_model_dir: Path, tmp_path: Path) -> None:
    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        _train(tiny_model_dir, tmp_path, cancel=lambda: next(calls) == 5)
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    other = run_training(model, tokenizer, EXAMPLES[:4], CONFIG, tmp_path, seed=3)
    assert other.resumed_from is None and other.steps == 3  # 4 examples: 1 step per epoch
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert names == ["step-000002", "step-000003"]  # the stale step-000005 is gone


@pytest.mark.parametrize("cuda_state", ["one device", "every device (older checkpoints)"])
def test_a_checkpoint_from_a_gpu_resumes_on_the_cpu(
    tiny_model_dir: Path, tmp_path: Path, cuda_state: str
) -> None:
    """A checkpoint written on a CUDA worker (it holds ``rng.cuda``) resumes on a CPU worker,
    and to the same adapter: the CUDA RNG state is simply not needed there."""
    from grait_engine.training.checkpoint import load_latest, save_checkpoint

    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        _train(tiny_model_dir, tmp_path / "cut", cancel=lambda: next(calls) == 3)
    found = load_latest(
        tmp_path / "cut",
        json.loads((tmp_path / "cut" / "checkpoints" / "step-000003" / STATE_JSON).read_text())[
            "inputs_hash"
        ],
    )
    assert found is not None and "rng.cuda" not in found.tensors  # written on the CPU
    # What a CUDA run writes: the Philox state of the device in use (16 bytes), or, from
    # older versions, one such state per visible GPU.
    state = torch.arange(16, dtype=torch.uint8)
    tensors = dict(found.tensors)
    tensors["rng.cuda"] = state if cuda_state == "one device" else torch.stack([state, state])
    save_checkpoint(tmp_path / "cut", tensors, found.state, keep=2)
    resumed = _train(tiny_model_dir, tmp_path / "cut")
    full = _train(tiny_model_dir, tmp_path / "full")
    assert resumed.resumed_from == 3
    a, b = _adapter(full.adapter_dir), _adapter(resumed.adapter_dir)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


def test_a_diverging_run_stops_and_saves_nothing(tiny_model_dir: Path, tmp_path: Path) -> None:
    """lr 1e6 makes the weights and the loss NaN/inf: the stage raises TrainingDiverged
    (the service's ``diverged``) and writes neither a checkpoint of it nor an adapter."""
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    config = TrainingConfig(
        lora_r=4,
        lr=1e6,
        grad_clip=0.0,
        epochs=3,
        batch_size=2,
        grad_accum=1,
        checkpoint_every=1,
        warmup_ratio=0.0,
    )
    with pytest.raises(TrainingDiverged, match="training diverged at step"):
        run_training(model, tokenizer, EXAMPLES, config, tmp_path, seed=0)
    assert not (tmp_path / "adapter").exists() and read_manifest(tmp_path) is None
    for state in (tmp_path / "checkpoints").glob("step-*/" + STATE_TENSORS):
        tensors = load_file(str(state))
        assert all(bool(torch.isfinite(t).all()) for t in tensors.values()), state
