"""Out-of-memory back-off: the helper itself, then every stage with an injected OOM.

An out-of-memory error is injected by wrapping the function that does a stage's batch work
so that it raises ``torch.OutOfMemoryError`` (what CUDA raises) for batches larger than a
limit; each stage must then finish with smaller batches, tell ``notice``, and give the
results of a run that never ran out of memory. With the limit below one row the stage must
fail with ``OutOfMemory`` and a message that says what to change.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from grait_engine.memory import (
    Batching,
    OutOfMemory,
    is_out_of_memory,
    process_in_batches,
    retry_halving,
)
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.stages import StageCallbacks


def oom_above(limit: int, size_of, real):
    """``real`` wrapped to raise CUDA's OutOfMemoryError when ``size_of(args) > limit``."""

    def wrapped(*args, **kwargs):
        if size_of(args, kwargs) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    return wrapped


def test_batches_halve_until_they_fit_and_stay_small() -> None:
    seen: list[list[int]] = []
    notices: list[tuple[str, str]] = []

    def work(rows: list[int]) -> None:
        if len(rows) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        seen.append(rows)

    size = process_in_batches(
        list(range(10)), 16, work, stage="probe", notice=lambda *n: notices.append(n)
    )
    assert size == 2
    assert [r for rows in seen for r in rows] == list(range(10))  # every row once, in order
    assert all(len(rows) <= 2 for rows in seen)
    assert notices == [
        ("probe", "out of memory at batch size 16: retrying with 8"),
        ("probe", "out of memory at batch size 8: retrying with 4"),
        ("probe", "out of memory at batch size 4: retrying with 2"),
    ]
    batching = Batching(16, "probe")
    batching.run(list(range(10)), work)
    assert batching.size == 2  # kept for the next shard


def test_one_row_that_does_not_fit_fails_clearly() -> None:
    def work(rows: list[int]) -> None:
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")

    with pytest.raises(OutOfMemory, match="evaluate: out of memory with a batch size of 1"):
        process_in_batches([0, 1], 4, work, stage="evaluate")


def test_other_errors_pass_through() -> None:
    def work(rows: list[int]) -> None:
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        process_in_batches([0], 4, work, stage="probe")
    assert not is_out_of_memory(ValueError("out of memory"))
    assert is_out_of_memory(torch.OutOfMemoryError("x")) and is_out_of_memory(MemoryError())


def test_retry_halving_returns_the_size_that_worked() -> None:
    result, size = retry_halving(
        lambda s: s if s <= 5 else (_ for _ in ()).throw(torch.OutOfMemoryError("oom")),
        32,
        stage="train",
        what="micro-batch size",
        notice=None,
    )
    assert (result, size) == (4, 4)


# --- every stage, with an injected out-of-memory error ----------------------------------------


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path):
    return load_model(ModelSpec(str(tiny_model_dir)))


def test_probe_backs_off(tiny, tmp_path: Path, monkeypatch) -> None:
    from grait_engine.probe import runner
    from grait_engine.probe.config import ProbeConfig
    from grait_engine.probe.stage import run_probe
    from tests.engine.probe.pools import choice_items

    items, config = choice_items(7), ProbeConfig(choice_shots=1)
    plain = run_probe(*tiny, items, tmp_path / "plain", config=config, batch_size=1)
    monkeypatch.setattr(
        runner, "choice_batch", oom_above(1, lambda a, k: len(a[2]), runner.choice_batch)
    )
    notices: list[tuple[str, str]] = []
    heard = StageCallbacks(notice=lambda *n: notices.append(n))
    backed = run_probe(
        *tiny, items, tmp_path / "backed", config=config, batch_size=4, callbacks=heard
    )
    assert [m for _, m in notices] == [
        "out of memory at batch size 4: retrying with 2",
        "out of memory at batch size 2: retrying with 1",
    ]
    read = [(d / name).read_text() for d, name in ((plain.directory, s) for s in plain.shards)]
    again = [(backed.directory / name).read_text() for name in backed.shards]
    assert read == again  # the same records, byte for byte (batch of one either way)
    monkeypatch.setattr(runner, "choice_batch", oom_above(0, lambda a, k: len(a[2]), lambda: 0))
    with pytest.raises(OutOfMemory, match="probe: out of memory with a batch size of 1"):
        run_probe(*tiny, items, tmp_path / "none", config=config, batch_size=2)


def test_features_back_off(tiny_model_dir: Path, monkeypatch) -> None:
    from grait_engine.features import compute
    from grait_engine.features.compute import batched_features
    from tests.engine.features.pools import mixed_items, random_lora_context

    ctx = random_lora_context(tiny_model_dir, dim=64)
    items = mixed_items(5)
    plain = batched_features(ctx, items, 2)
    monkeypatch.setattr(
        compute,
        "module_grads",
        oom_above(2, lambda a, k: a[1].input_ids.shape[0], compute.module_grads),
    )
    notices: list[tuple[str, str]] = []
    batching = Batching(8, "features", lambda *n: notices.append(n))
    backed = batched_features(ctx, items, batching)
    assert batching.size == 2 and len(notices) == 2
    for a, b in zip(plain, backed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_training_backs_off(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from grait_engine.training import stage, step
    from tests.engine.training.test_stage import CONFIG, EXAMPLES, _adapter

    # No dropout: micro-batches of another size draw other dropout masks.
    config = replace(CONFIG, lora_dropout=0.0)

    def train(out: Path, callbacks: StageCallbacks | None = None):
        model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
        return stage.run_training(
            model, tokenizer, EXAMPLES, config, out, seed=3, callbacks=callbacks
        )

    plain = train(tmp_path / "plain")
    monkeypatch.setattr(
        step, "weighted_loss", oom_above(1, lambda a, k: len(a[1]), step.weighted_loss)
    )
    notices: list[tuple[str, str]] = []
    backed = train(tmp_path / "backed", StageCallbacks(notice=lambda *n: notices.append(n)))
    assert notices == [("train", "out of memory at micro-batch size 2: retrying with 1")]
    assert backed.steps == plain.steps
    a, b = _adapter(plain.adapter_dir), _adapter(backed.adapter_dir)
    # The same gradient summed in another order: equal up to float rounding.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5


def test_evaluation_backs_off(tiny, tmp_path: Path, monkeypatch) -> None:
    from grait_engine.evaluation import decode
    from grait_engine.evaluation.evaluate import evaluate_model
    from tests.engine.probe.pools import choice_items

    items = choice_items(6)
    plain = evaluate_model(*tiny, items, "refuse", tmp_path / "plain.jsonl", batch_size=1)
    monkeypatch.setattr(
        decode, "greedy_batch", oom_above(2, lambda a, k: len(a[3]), decode.greedy_batch)
    )
    notices: list[tuple[str, str]] = []
    batching = Batching(8, "evaluate", lambda *n: notices.append(n))
    backed = evaluate_model(*tiny, items, "refuse", tmp_path / "backed.jsonl", batch_size=batching)
    assert batching.size == 2 and len(notices) == 2
    assert backed == plain
    assert (tmp_path / "plain.jsonl").read_text() == (tmp_path / "backed.jsonl").read_text()


def test_a_jobs_batching_keeps_its_notice_through_evaluate_set(tiny, tmp_path, monkeypatch):
    """run_job hands evaluate_set one Batching (with the job's notice) for all test sets."""
    from grait_engine.evaluation import decode
    from grait_engine.evaluation.evaluate import evaluate_set
    from tests.engine.probe.pools import choice_items

    monkeypatch.setattr(
        decode, "greedy_batch", oom_above(2, lambda a, k: len(a[3]), decode.greedy_batch)
    )
    notices: list[tuple[str, str]] = []
    batching = Batching(4, "evaluate", lambda *n: notices.append(n))
    evaluate_set(*tiny, choice_items(5), tmp_path, batch_size=batching)
    assert notices == [("evaluate", "out of memory at batch size 4: retrying with 2")]
    assert batching.size == 2
