"""One whole job on the tiny toy world, then a second one reusing the probe and features."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from grait_engine.pipeline.config import load_job_config
from grait_engine.pipeline.run import run_job
from tests.tiny_jobs import GRAIT_16, tiny_job

RATES = ("n", "pc", "pw", "pr", "unparsed")


def _job(world: Any, weighting: str) -> dict[str, Any]:
    return tiny_job(world, {**GRAIT_16, "weighting": weighting})


def _check_report(report: dict[str, Any], out: Path) -> None:
    assert json.loads((out / "report.json").read_text()) == report
    assert "| test set | model |" in (out / "report.md").read_text()
    assert set(report) >= {"job", "split", "selection", "stages", "eval"}
    assert report["job"]["method"] == "grait" and report["job"]["config"]["seed"] == 0
    assert set(report["split"]) == {"n_pool", "n_ik", "n_idk", "tau"}
    assert report["selection"]["n_ik"] + report["selection"]["n_idk"] <= 32
    assert report["selection"]["variant"] == "stratified"
    assert set(report["stages"]) == {"probe", "split", "features", "select", "train", "evaluate"}
    assert set(report["eval"]) == {"id", "ood"}
    for block in report["eval"].values():
        assert set(block) == {"init_basic", "init_refuse", "tuned"}
        for name, rates in block.items():
            assert all(math.isfinite(rates[k]) for k in RATES)
            assert 0 <= rates["pc"] <= 100 and rates["n"] > 0
            if name != "init_basic":
                assert "ths" in rates
                assert rates["oracle_share"] == pytest.approx(
                    rates["ths"] / block["init_basic"]["pc"]
                )
            assert 0 <= rates["f1"] <= 100
            # The tiny world's items carry meta.known: refusal is split by ground truth.
            by_known = rates["by_known"]
            assert by_known["known"]["n"] + by_known["unknown"]["n"] == rates["n"]
            assert by_known["known"]["n"] > 0 and by_known["unknown"]["n"] > 0
    assert "| THS/Pc0 | F1 | Pr unknown | Pr known |" in (out / "report.md").read_text()
    _check_job_outputs(report, out)


def _check_job_outputs(report: dict[str, Any], out: Path) -> None:
    """The job folder holds split, selection, training curves and adapter (outputs.py)."""
    from grait_engine.pipeline.outputs import read_metrics

    split = json.loads((out / "split.json").read_text())
    assert split["n_pool"] == report["split"]["n_pool"] and len(split["correctness"]) > 0
    selection = json.loads((out / "selection.json").read_text())
    assert selection["n_idk"] == report["selection"]["n_idk"]
    series = read_metrics(out / "metrics.jsonl")
    assert set(series) == {"train/loss", "train/lr"}
    steps = [step for step, _ in series["train/loss"]]
    assert steps == sorted(set(steps)) and len(steps) >= 1
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    stages = json.loads((out / "stages.json").read_text())
    assert set(stages) == set(report["stages"]) - {"evaluate"}
    assert all(Path(path).is_dir() for path in stages.values())


class StageEvents:
    """An ``on_stage`` callback that keeps what it hears."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, event: str, stage: str, data: dict[str, Any]) -> None:
        self.seen.append((event, stage, data))

    def check(self, report: dict[str, Any]) -> None:
        """Every stage of the report started then finished, in order, with the report's
        entry (the same clock) as ``stage_finished`` data; nothing else was heard."""
        expected = []
        for stage, entry in report["stages"].items():
            finished = {k: v for k, v in entry.items() if k != "compute"}
            expected += [("stage_started", stage, {}), ("stage_finished", stage, finished)]
        assert self.seen == expected


def test_run_then_reuse_probe_and_features(tiny_world: Any, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    heard = StageEvents()
    config = load_job_config(_job(tiny_world, "adaptive"))
    first = run_job(config, tmp_path / "a", cache, on_stage=heard)
    _check_report(first, tmp_path / "a")
    heard.check(first)
    assert not first["stages"]["probe"]["cached"]
    assert not first["stages"]["features"]["cached"]
    # projection_dtype "auto" is echoed as asked and reported as resolved on this CPU.
    assert first["job"]["config"]["features"]["projection_dtype"] == "auto"
    assert first["stages"]["features"]["compute"] == {
        "model_dtype": "float32",
        "device": "cpu",
        "projection_dtype": "float32",
    }

    heard = StageEvents()
    second = run_job(
        load_job_config(_job(tiny_world, "none")), tmp_path / "b", cache, on_stage=heard
    )
    _check_report(second, tmp_path / "b")
    heard.check(second)  # cached stages (probe, split, features) included
    stages = second["stages"]
    assert stages["probe"]["cached"] and stages["split"]["cached"]
    assert stages["features"]["cached"]
    assert not stages["select"]["cached"]
    assert second["selection"]["weights"] in (None, {"min": 1.0, "mean": 1.0, "max": 1.0})
    assert second["split"] == first["split"]
    assert len(list((cache / "stages").glob("probe-*"))) == 1
    assert len(list((cache / "stages").glob("select-*"))) == 2


def test_cli_run_writes_report(tiny_world: Any, tmp_path: Path) -> None:
    import argparse

    import yaml

    from grait_cli.run_cmd import run

    job = {**_job(tiny_world, "none"), "method": {"type": "corcer_rait", "n_ik": 8, "n_idk": 8}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    args = argparse.Namespace(
        config=str(tmp_path / "job.yaml"), out=str(tmp_path / "o"), cache_dir=None
    )
    assert run(args) == 0
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["job"]["method"] == "corcer_rait"
    assert report["selection"]["n_ik"] == 8 and report["selection"]["n_idk"] == 8
    assert set(report["stages"]) == {"probe", "split", "train", "evaluate"}
    assert (tmp_path / "o" / "cache" / "stages").is_dir()


def test_metric_log_keeps_last_value_per_step(tmp_path: Path) -> None:
    """A resumed run repeats steps; readers keep the last value; a torn line is skipped."""
    from grait_engine.pipeline.outputs import MetricLog, read_metrics

    seen: list[tuple[str, int, float]] = []
    log = MetricLog(tmp_path / "m.jsonl", lambda *point: seen.append(point))
    for step, value in [(1, 3.0), (2, 2.0), (2, 1.5), (3, 1.0)]:
        log("train/loss", step, value)
    with (tmp_path / "m.jsonl").open("a") as handle:
        handle.write('{"name": "train/loss", "st')
    assert read_metrics(tmp_path / "m.jsonl") == {"train/loss": [(1, 3.0), (2, 1.5), (3, 1.0)]}
    assert len(seen) == 4
    assert read_metrics(tmp_path / "missing.jsonl") == {}


def test_cancel_between_stages_runs_no_later_stage(tiny_world: Any, tmp_path: Path) -> None:
    """A cancel that arrives as a stage ends is seen before the next stage starts."""
    from grait_engine.pipeline.job import JobCancelled

    asked = []
    heard = StageEvents()

    def progress(stage: str, done: int, total: int, message: str) -> None:
        if stage == "probe" and done >= total:
            asked.append(stage)  # the probe has no batch left to check a cancel at

    job = {**_job(tiny_world, "none"), "method": {"type": "cor_rait", "n_ik": 8, "n_idk": 8}}
    with pytest.raises(JobCancelled, match="before split"):
        run_job(
            load_job_config(job),
            tmp_path / "out",
            tmp_path / "cache",
            progress=progress,
            cancel=lambda: bool(asked),
            on_stage=heard,
        )
    assert asked == ["probe"]
    assert [(event, stage) for event, stage, _ in heard.seen] == [
        ("stage_started", "probe"),
        ("stage_finished", "probe"),
    ]
    assert list((tmp_path / "cache" / "stages").glob("split-*")) == []


def test_stage_keys_differ_by_dtype(tiny_world: Any, tmp_path: Path) -> None:
    """A bfloat16 job never reuses the float32 job's probe or training outputs (nor the
    reverse): the model's dtype and device kind are part of every stage key."""
    cache = tmp_path / "cache"
    job = tiny_job(tiny_world, {"type": "cor_rait", "n_ik": 8, "n_idk": 8})
    job["eval_datasets"] = {"id": job["eval_datasets"]["id"]}
    first = run_job(load_job_config(job), tmp_path / "f32", cache)
    second = run_job(load_job_config({**job, "dtype": "bfloat16"}), tmp_path / "bf16", cache)
    assert not second["stages"]["probe"]["cached"] and not second["stages"]["train"]["cached"]
    assert len(list((cache / "stages").glob("probe-*"))) == 2
    paths = [json.loads((tmp_path / name / "stages.json").read_text()) for name in ("f32", "bf16")]
    assert all(paths[0][stage] != paths[1][stage] for stage in ("probe", "split", "train"))
    heard = StageEvents()
    again = run_job(load_job_config(job), tmp_path / "again", cache, on_stage=heard)
    assert again["stages"]["probe"]["cached"] and again["stages"]["train"]["cached"]
    heard.check(again)
    assert first["job"]["config"]["runtime"] == {
        "batch_size": None,
        "memory_budget_mb": None,
        "tf32": True,
        "quantization": None,
    }


def test_craft_rehearses_reprobes_filters_and_leaves_m0_unchanged(
    tiny_world: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    craft = load_job_config(tiny_job(tiny_world, {"type": "craft", "n_ik": 8, "n_idk": 8}))
    report = run_job(craft, tmp_path / "craft", cache)
    assert report["job"]["method"] == "craft"
    assert set(report["stages"]) == {"probe", "split", "rehearse", "reprobe", "train", "evaluate"}
    notes = " ".join(report["selection"]["notes"])
    assert "knowledge flow" in notes and "rehearsal on" in notes
    assert report["selection"]["n_ik"] == 8 and report["selection"]["n_idk"] == 8
    # The second probe saw the rehearsed model: its correctness differs from stage 1's.
    stages = json.loads((tmp_path / "craft" / "stages.json").read_text())
    from grait_engine.probe.store import read_probe

    before = {r["id"]: r["correctness"] for r in read_probe(stages["probe"])[1]}
    after = {r["id"]: r["correctness"] for r in read_probe(stages["reprobe"])[1]}
    assert before.keys() == after.keys() and before != after
    # The refusal set is the least certain of the idk items whose correctness fell.
    from grait_engine.methods import craft_examples
    from grait_engine.split.stage import load_split

    certainty = {r["id"]: r["certainty"] for r in read_probe(stages["probe"])[1]}
    flow = {i: after[i] - before[i] for i in before}
    expected = craft_examples(load_split(stages["split"]), 8, 8, 0, certainty, flow)
    fading = [i for i in load_split(stages["split"]).idk_ids if flow[i] < 0]
    assert fading and all(flow[i] < 0 for i, refuse, _ in expected.entries if refuse)
    assert report["selection"]["n_idk"] == expected.n_idk
    # The rehearsal LoRA was taken out again: M0's predictions, decoded afresh (another
    # cache), equal the craft job's.
    cor = load_job_config(tiny_job(tiny_world, {"type": "cor_rait", "n_ik": 8, "n_idk": 8}))
    assert (
        run_job(cor, tmp_path / "cor", tmp_path / "cache2")["stages"]["evaluate"]["base_cached"]
        is False
    )
    for name in ("init_basic", "init_refuse"):
        path = Path("eval") / "id" / name / "predictions.jsonl"
        assert (tmp_path / "craft" / path).read_text() == (tmp_path / "cor" / path).read_text()
    # A second craft run reuses every stage it can.
    again = run_job(craft, tmp_path / "craft2", cache)
    assert all(again["stages"][s]["cached"] for s in ("probe", "rehearse", "reprobe", "train"))
    # ... and M0's test-set predictions (the tuned model is decoded again).
    assert again["stages"]["evaluate"]["base_cached"] is True
    assert again["eval"] == report["eval"]


def test_probe_shots_come_from_the_shots_dataset(tiny_world: Any, tmp_path: Path) -> None:
    from grait_engine.probe.store import read_probe

    cache = tmp_path / "cache"
    base = tiny_job(tiny_world, {"type": "cor_rait", "n_ik": 8, "n_idk": 8})
    zero = run_job(load_job_config(base), tmp_path / "zero", cache)
    dev = {**base, "shots_dataset": str(tiny_world.data_path("choice", "test_ood"))}
    shots = run_job(load_job_config(dev), tmp_path / "dev", cache)
    assert not shots["stages"]["probe"]["cached"]  # another probe stage, not a reuse
    paths = [
        json.loads((tmp_path / d / "stages.json").read_text())["probe"] for d in ("zero", "dev")
    ]
    assert paths[0] != paths[1]
    zero_c = [r["correctness"] for r in read_probe(paths[0])[1]]
    dev_c = [r["correctness"] for r in read_probe(paths[1])[1]]
    assert zero_c != dev_c
    assert shots["job"]["config"]["shots_dataset"].endswith("test_ood.jsonl")
    assert zero["job"]["config"]["shots_dataset"] is None


def test_dynamic_weighting_recomputes_the_weights_while_training(
    tiny_world: Any, tmp_path: Path
) -> None:
    """``weighting: dynamic`` starts from the adaptive weights and recomputes them in the
    fine-tune (32 examples in batches of 8: steps 0-3, recomputed before steps 2 and 3)."""
    job = tiny_job(tiny_world, {**GRAIT_16, "weighting": "dynamic", "reweight_every": 2})
    job["training"]["epochs"] = 2
    report = run_job(load_job_config(job), tmp_path / "out", tmp_path / "cache")
    assert report["job"]["config"]["method"]["weighting"] == "dynamic"
    assert report["job"]["config"]["method"]["reweight_every"] == 2
    stages = json.loads((tmp_path / "out" / "stages.json").read_text())
    manifest = json.loads((Path(stages["train"]) / "manifest.json").read_text())
    steps = [entry["step"] for entry in manifest["reweights"]]
    total = manifest["steps"]
    assert steps == list(range(2, total, 2)) and steps
    from grait_engine.pipeline.outputs import read_metrics

    series = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert [step for step, _ in series["train/weight_max"]] == steps
