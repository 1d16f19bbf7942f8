"""The features stage: warmup, shards, progress, cancel, resume, skip."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grait_engine.artifacts import sha256_file
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.stage import FeaturesCancelled, SpeedSettings, run_features
from grait_engine.features_store import FeatureStore
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.stages import StageCallbacks
from tests.engine.features.pools import correctness_of, mixed_items

CONFIG = FeaturesConfig(lora_r=4, warmup_batch_size=2, warmup_epochs=2)
SPEED = SpeedSettings(batch_size=3, group_items=2, shard_rows=4)


def loaded(model_dir) -> tuple:
    """A fresh (model, tokenizer) of the tiny model."""
    return load_model(ModelSpec(str(model_dir)))


ITEMS = mixed_items(10)
CORRECT = correctness_of(ITEMS)


def shard_digest(path: Path) -> str:
    """sha256 of a shard's tensor bytes and its header with keys sorted.

    safetensors writes the ``__metadata__`` keys in hash-map order, which changes from process
    to process, so whole-file hashes of identical shards can differ; everything else is
    compared byte for byte.
    """
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True).encode()
    return hashlib.sha256(header + data[8 + size :]).hexdigest()


def shard_hashes(directory: Path) -> dict[str, str]:
    return {p.name: shard_digest(p) for p in sorted(directory.glob("shard-*.safetensors"))}


def recording(calls: list[tuple[str, int, int, str]]) -> StageCallbacks:
    """Callbacks that append every progress call to ``calls``."""
    return StageCallbacks(progress=lambda *a: calls.append(a))


def cancel_at_five(done: list[int]) -> StageCallbacks:
    """Callbacks that keep the items done in ``done[0]`` and cancel once 5 are done."""
    return StageCallbacks(
        progress=lambda _s, n, _t, _m: done.__setitem__(0, n), cancel=lambda: done[0] >= 5
    )


@pytest.fixture(scope="module")
def complete(tiny_model_dir, tmp_path_factory):
    """An uninterrupted run, with its progress calls."""
    calls: list[tuple[str, int, int, str]] = []
    out = tmp_path_factory.mktemp("features") / "stage"
    result = run_features(
        CONFIG,
        *loaded(tiny_model_dir),
        ITEMS,
        CORRECT,
        out,
        seed=0,
        speed=SPEED,
        callbacks=recording(calls),
    )
    return result, calls


def test_writes_unit_rows_in_pool_order(complete) -> None:
    result, _ = complete
    assert not result.skipped and result.computed == 10 and result.reused == 0
    # tiny Llama, rank 4 on q/k/v/o: 2 * (2*4*32 + 2*(4*32 + 16*4)) = 1792 < 8192
    assert result.d == 1792
    store = FeatureStore.open(result.features_dir, verify=True)
    assert list(store.ids) == [item.id for item in ITEMS]
    for name in ("ans", "idk"):
        values = store.gather(name, torch.arange(10))
        torch.testing.assert_close(values.norm(dim=1), torch.ones(10))
    warmup = (result.directory / "warmup" / "manifest.json").read_text()
    assert '"n_items": 5' in warmup and '"fallback": false' in warmup


def test_progress_reaches_total(complete) -> None:
    _, calls = complete
    assert {c[0] for c in calls} == {"features"}
    done = [c[1] for c in calls]
    assert done == sorted(done) and calls[-1][1:3] == (10, 10)


def test_second_run_is_skipped(complete, tiny_model_dir) -> None:
    result, _ = complete
    again = run_features(
        CONFIG, *loaded(tiny_model_dir), ITEMS, CORRECT, result.directory, seed=0, speed=SPEED
    )
    assert again.skipped and again.inputs_hash == result.inputs_hash


def test_another_training_loss_recomputes_the_features(complete, tiny_model_dir) -> None:
    """The features are the gradients of the job's training loss: another ``target_loss``
    is another input (the warmup and the rows are redone), recorded in the manifest."""
    result, _ = complete
    assert json.loads((result.directory / "manifest.json").read_text())["target_loss"] == "mean"
    decision = run_features(
        CONFIG,
        *loaded(tiny_model_dir),
        ITEMS,
        CORRECT,
        result.directory.parent / "decision",
        speed=SPEED,
        target_loss="decision",
    )
    assert not decision.skipped and decision.inputs_hash != result.inputs_hash
    manifest = json.loads((decision.directory / "manifest.json").read_text())
    assert manifest["target_loss"] == "decision"
    a, b = FeatureStore.open(result.features_dir), FeatureStore.open(decision.features_dir)
    cosine = (a.gather("idk", torch.arange(10)) * b.gather("idk", torch.arange(10))).sum(1)
    assert cosine.min().item() < 0.999  # the refusal rows' loss weighs its tokens otherwise


def test_cancel_then_resume_is_byte_identical(complete, tiny_model_dir, tmp_path) -> None:
    result, _ = complete
    out = tmp_path / "stage"
    done = [0]
    with pytest.raises(FeaturesCancelled):
        # Stop once items 4-5 (the first group of shard 1) are done: shard 0 is on disk.
        run_features(
            CONFIG,
            *loaded(tiny_model_dir),
            ITEMS,
            CORRECT,
            out,
            speed=SPEED,
            callbacks=cancel_at_five(done),
        )
    assert done[0] == 6
    assert list(shard_hashes(out / "features")) == ["shard-00000.safetensors"]
    calls: list[tuple[str, int, int, str]] = []
    resumed = run_features(
        CONFIG,
        *loaded(tiny_model_dir),
        ITEMS,
        CORRECT,
        out,
        speed=SPEED,
        callbacks=recording(calls),
    )
    assert resumed.reused == 4 and resumed.computed == 6
    assert calls[-1][1:3] == (10, 10)
    assert shard_hashes(out / "features") == shard_hashes(result.features_dir)
    assert shard_hashes(out / "features").keys() == {f"shard-0000{k}.safetensors" for k in range(3)}
    assert sha256_file(out / "features/ids.json") == sha256_file(result.features_dir / "ids.json")
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (out, result.directory)]
    assert manifests[0]["inputs_hash"] == manifests[1]["inputs_hash"]


def test_other_layout_changes_rounding_only(complete, tiny_model_dir, tmp_path) -> None:
    result, _ = complete
    other = run_features(
        CONFIG,
        *loaded(tiny_model_dir),
        ITEMS,
        CORRECT,
        tmp_path / "other",
        speed=SpeedSettings(batch_size=7, group_items=5, shard_rows=5),
    )
    a, b = FeatureStore.open(result.features_dir), FeatureStore.open(other.features_dir)
    rows = torch.arange(10)
    for name in ("ans", "idk"):
        # Unit rows: a different batch layout moves float rounding, which the bfloat16
        # products of the projection can round to the next bfloat16 value (about 2^-9
        # relative per entry), so rows are compared by cosine, not entry by entry.
        cosine = (a.gather(name, rows) * b.gather(name, rows)).sum(1)
        assert cosine.min().item() > 1 - 1e-5, cosine


def test_cancel_during_warmup_raises(tiny_model_dir, tmp_path) -> None:
    with pytest.raises(FeaturesCancelled):
        run_features(
            CONFIG,
            *loaded(tiny_model_dir),
            ITEMS,
            CORRECT,
            tmp_path,
            speed=SPEED,
            callbacks=StageCallbacks(cancel=lambda: True),
        )
    assert not (tmp_path / "warmup" / "manifest.json").exists()


KILL_SCRIPT = """
import os, signal, sys
from grait_engine.features.stage import run_features
from grait_engine.modeling import ModelSpec, load_model
from grait_engine.stages import StageCallbacks
from tests.engine.features.test_stage import CONFIG, CORRECT, ITEMS, SPEED

def progress(stage, done, total, message):
    if done >= 5:  # items 4-5 are buffered, shard 0 is on disk
        os.kill(os.getpid(), signal.SIGKILL)

run_features(CONFIG, *load_model(ModelSpec(sys.argv[1])), ITEMS, CORRECT, sys.argv[2], speed=SPEED,
             callbacks=StageCallbacks(progress=progress))
"""


def test_killed_run_resumes_identically(complete, tiny_model_dir, tmp_path) -> None:
    result, _ = complete
    out = tmp_path / "stage"
    root = Path(__file__).resolve().parents[3]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(tiny_model_dir), str(out)],
        cwd=root,
        capture_output=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert list(shard_hashes(out / "features")) == ["shard-00000.safetensors"]
    resumed = run_features(CONFIG, *loaded(tiny_model_dir), ITEMS, CORRECT, out, speed=SPEED)
    assert resumed.reused == 4 and resumed.computed == 6
    assert shard_hashes(out / "features") == shard_hashes(result.features_dir)


def test_other_inputs_take_the_directory_over(complete, tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "stage"
    first = run_features(CONFIG, *loaded(tiny_model_dir), ITEMS[:4], CORRECT, out, speed=SPEED)
    second = run_features(CONFIG, *loaded(tiny_model_dir), ITEMS[:6], CORRECT, out, speed=SPEED)
    assert first.inputs_hash != second.inputs_hash and not second.skipped
    assert second.reused == 0 and len(FeatureStore.open(second.features_dir).ids) == 6


def test_a_resumed_run_keeps_the_group_size_it_started_with(
    complete, tiny_model_dir, tmp_path
) -> None:
    """The group size comes from free memory, which another attempt (or worker) sees
    differently: the resumed run reads the first run's ``plan.json`` and cuts the same
    groups, so its shards are the uninterrupted run's, byte for byte."""
    result, _ = complete
    out, done = tmp_path / "stage", [0]
    with pytest.raises(FeaturesCancelled):
        run_features(
            CONFIG,
            *loaded(tiny_model_dir),
            ITEMS,
            CORRECT,
            out,
            speed=SPEED,
            callbacks=cancel_at_five(done),
        )
    assert json.loads((out / "plan.json").read_text()) == {"group_items": 2}
    calls: list[tuple[str, int, int, str]] = []
    other = SpeedSettings(batch_size=3, group_items=None, shard_rows=4)  # would be 4 per group
    resumed = run_features(
        CONFIG,
        *loaded(tiny_model_dir),
        ITEMS,
        CORRECT,
        out,
        speed=other,
        callbacks=recording(calls),
    )
    assert resumed.reused == 4
    assert [c[1] for c in calls if c[3].endswith("items")] == [6, 8, 10]  # groups of 2
    assert shard_hashes(out / "features") == shard_hashes(result.features_dir)
    assert json.loads((out / "manifest.json").read_text())["group_items"] == 2
