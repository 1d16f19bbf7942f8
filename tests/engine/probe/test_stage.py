"""The probe stage: shards, manifest, progress, cancel, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grait_engine.probe.batching import PromptTooLongError
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.stage import ProbeCancelled, run_probe
from grait_engine.probe.store import read_probe
from grait_engine.records.item import Item
from grait_engine.stages import StageCallbacks
from tests.engine.probe.pools import choice_items, open_items

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ProbeConfig(choice_shots=2, open_shots=1, n_samples=2, max_new_tokens=4)
SIZES = {"batch_size": 2, "shard_size": 4}  # 10 items: shards of 4, 4, 2; 2 batches each


class CountForwards:
    """Counts forward passes of the model's decoder (each batch of the choice probe is one;
    the probe runs the decoder and reads the option letters' logits itself)."""

    def __init__(self, model):
        self.calls = 0
        self.handle = model.get_decoder().register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.handle.remove()


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("probe-*.jsonl"))}


def test_writes_shards_manifest_and_reports_progress(tiny, tmp_path):
    items = choice_items(10)
    calls = []
    callbacks = StageCallbacks(progress=lambda *a: calls.append(a))
    result = run_probe(*tiny, items, tmp_path, config=CONFIG, callbacks=callbacks, **SIZES)
    assert result.shards == ("probe-00000.jsonl", "probe-00001.jsonl", "probe-00002.jsonl")
    assert (result.computed, result.reused, result.skipped) == (3, 0, False)
    manifest, records = read_probe(tmp_path)
    assert sorted(manifest["files"]) == list(result.shards)
    assert manifest["task"] == "choice" and manifest["config"] == CONFIG.to_dict()
    assert [r["id"] for r in records] == [i.id for i in items]
    assert set(records[0]) == {"id", "correctness", "certainty", "probs"}
    assert not (tmp_path / "checkpoint.json").exists()
    assert [c[0] for c in calls] == ["probe"] * len(calls)
    assert [c[1] for c in calls] == [2, 4, 6, 8, 10] and calls[-1][2] == 10
    again = run_probe(*tiny, items, tmp_path, config=CONFIG, **SIZES)
    assert again.skipped and again.computed == 0


def test_cancel_then_resume_is_identical_and_recomputes_only_missing_shards(tiny, tmp_path):
    items = choice_items(10)
    fresh = tmp_path / "fresh"
    run_probe(*tiny, items, fresh, config=CONFIG, **SIZES)
    resumed = tmp_path / "resumed"
    checks = iter([False, False, False, True])  # cancel before the 4th batch (mid shard 2)
    stop = StageCallbacks(cancel=lambda: next(checks))
    with pytest.raises(ProbeCancelled):
        run_probe(*tiny, items, resumed, config=CONFIG, callbacks=stop, **SIZES)
    assert list(_files(resumed)) == ["probe-00000.jsonl"]
    assert not (resumed / "manifest.json").exists()
    kept_mtime = (resumed / "probe-00000.jsonl").stat().st_mtime_ns
    with CountForwards(tiny[0]) as counter:
        result = run_probe(*tiny, items, resumed, config=CONFIG, **SIZES)
    assert (result.computed, result.reused) == (2, 1)
    assert counter.calls == 3  # shards 2 and 3: 2 + 1 batches; shard 1 was not recomputed
    assert (resumed / "probe-00000.jsonl").stat().st_mtime_ns == kept_mtime
    assert _files(resumed) == _files(fresh)
    assert (
        json.loads((resumed / "manifest.json").read_text())["files"]
        == json.loads((fresh / "manifest.json").read_text())["files"]
    )


def test_other_inputs_start_afresh(tiny, tmp_path):
    items = open_items(6)
    run_probe(*tiny, items, tmp_path, config=CONFIG, seed=0, **SIZES)
    first = _files(tmp_path)
    result = run_probe(*tiny, items, tmp_path, config=CONFIG, seed=1, **SIZES)
    assert (result.computed, result.reused, result.skipped) == (2, 0, False)
    assert _files(tmp_path) != first
    _, records = read_probe(tmp_path)
    assert set(records[0]) == {"id", "correctness", "certainty", "samples"}
    assert len(records[0]["samples"]) == CONFIG.n_samples


def test_killed_process_resumes_from_its_shards(tiny_model_dir, tiny, tmp_path):
    """SIGKILL in the middle of the third shard; a new process finishes the other shards."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from grait_engine.modeling import ModelSpec, load_model
        from grait_engine.probe.config import ProbeConfig
        from grait_engine.probe.stage import run_probe
        from grait_engine.stages import StageCallbacks
        from tests.engine.probe.pools import choice_items

        def progress(stage, done, total, message):
            if done == 9:  # after the first batch of shard 3 of 4
                os.kill(os.getpid(), signal.SIGKILL)

        model, tokenizer = load_model(ModelSpec({str(tiny_model_dir)!r}))
        run_probe(model, tokenizer, choice_items(14), {str(tmp_path / "probe")!r},
                  config=ProbeConfig(**{CONFIG.to_dict()!r}), batch_size=1, shard_size=4,
                  callbacks=StageCallbacks(progress=progress))
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert list(_files(tmp_path / "probe")) == ["probe-00000.jsonl", "probe-00001.jsonl"]
    result = run_probe(
        *tiny, choice_items(14), tmp_path / "probe", config=CONFIG, batch_size=1, shard_size=4
    )
    assert (result.computed, result.reused) == (2, 2)
    run_probe(
        *tiny, choice_items(14), tmp_path / "fresh", config=CONFIG, batch_size=1, shard_size=4
    )
    assert _files(tmp_path / "probe") == _files(tmp_path / "fresh")


def test_too_long_prompts_are_reported_by_id_before_any_work(tiny, tmp_path):
    items = choice_items(5)
    long_question = " ".join(["mountain"] * 600)  # far beyond the tiny model's 512 positions
    items[1] = Item(id="long-1", question=long_question, choices={"A": "a", "B": "b"}, answer="A")
    items[3] = Item(id="long-3", question=long_question, choices={"A": "a", "B": "b"}, answer="B")
    with CountForwards(tiny[0]) as counter, pytest.raises(PromptTooLongError) as error:
        run_probe(*tiny, items, tmp_path, config=ProbeConfig(choice_shots=0), **SIZES)
    assert [i for i, _ in error.value.offenders] == ["long-1", "long-3"]
    assert error.value.limit == 512 and "long-1" in str(error.value)
    assert counter.calls == 0 and not list(tmp_path.iterdir())


def test_open_prompts_need_room_for_new_tokens(tiny, tmp_path):
    items = open_items(3)
    with pytest.raises(PromptTooLongError) as error:
        run_probe(*tiny, items, tmp_path, config=ProbeConfig(max_new_tokens=500))
    assert [i for i, _ in error.value.offenders] == [i.id for i in items]
