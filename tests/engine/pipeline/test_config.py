"""Job config validation: each bad field is named, and nothing runs before it passes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from grait_cli.run_cmd import run
from grait_engine.pipeline.config import JobConfigError, load_job_config

CHOICE = {"question": "Q?", "choices": {"A": "a", "B": "b"}, "answer": "A"}
OPEN = {"question": "Q?", "answers": ["x"]}


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", **r}) + "\n" for i, r in enumerate(rows)))
    return path


@pytest.fixture()
def job(tmp_path: Path, tiny_model_dir: Path) -> dict[str, Any]:
    _write(tmp_path / "train.jsonl", [CHOICE] * 4)
    _write(tmp_path / "test.jsonl", [CHOICE] * 2)
    _write(tmp_path / "open.jsonl", [OPEN] * 2)
    return {
        "model": str(tiny_model_dir),
        "task": "choice",
        "training_dataset": str(tmp_path / "train.jsonl"),
        "eval_datasets": {"id": str(tmp_path / "test.jsonl")},
        "method": {"type": "grait", "n_ik": 2, "n_idk": 2, "weighting": "none"},
        "probe": {"choice_shots": 0},
        "features": {"dim": 64},
        "training": {"lora_r": 4, "epochs": 1},
        "seed": 3,
    }


def test_valid_config_resolves(job: dict[str, Any]) -> None:
    config = load_job_config(job)
    resolved = config.resolved()
    assert resolved["method"]["weighting"] == "none"
    assert resolved["method"]["variant"] == "stratified"
    assert resolved["training"]["lora_r"] == 4 and resolved["features"]["dim"] == 64
    assert resolved["model_revision"].startswith("local-")
    json.dumps(resolved)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"method": {"type": "sft"}}, "method.type"),
        ({"method": {"type": "grait", "variant": "best"}}, "method.variant"),
        ({"method": {"type": "grait", "n_ik": 0}}, "method.n_ik"),
        ({"method": {"type": "cor_rait", "n_idk": -1}}, "method.n_idk"),
        ({"method": {"type": "grait", "temperature": 0}}, "method.temperature"),
        ({"method": {"type": "van", "weighting": "none"}}, "method.weighting"),
        ({"method": {"type": "cor_rait", "reweight_every": 5}}, "method.reweight_every"),
        ({"method": {"type": "grait", "reweight_every": 0}}, "method.reweight_every"),
        ({"training_dataset": "missing.jsonl"}, "training_dataset"),
        ({"eval_datasets": {"ood": "nowhere.jsonl"}}, "eval_datasets.ood"),
        ({"task": "open"}, "training_dataset"),
        ({"model": "/no/such/model"}, "model"),
        ({"colour": "blue"}, "colour"),
        ({"probe": {"n_samples": 0}}, "probe.n_samples"),
        ({"probe": {"shots": 1}}, "probe.shots"),
        ({"features": {"dim": 0}}, "features.dim"),
        ({"features": {"size": 1}}, "features.size"),
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"tau": 1.5}, "tau"),
        ({"device": "tpu"}, "device"),
        ({"task": "essay"}, "task"),
        ({"shots_dataset": "nowhere.jsonl"}, "shots_dataset"),
        ({"method": {"type": "craft", "variant": "greedy"}}, "method.variant"),
    ],
)
def test_bad_field_is_named(job: dict[str, Any], change: dict[str, Any], field: str) -> None:
    with pytest.raises(JobConfigError) as caught:
        load_job_config({**job, **change})
    assert caught.value.field == field


def test_eval_dataset_task_mismatch(job: dict[str, Any], tmp_path: Path) -> None:
    bad = {**job, "eval_datasets": {"id": str(tmp_path / "open.jsonl")}}
    with pytest.raises(JobConfigError) as caught:
        load_job_config(bad)
    assert caught.value.field == "eval_datasets.id"


def test_yaml_relative_paths(job: dict[str, Any], tmp_path: Path) -> None:
    data = {**job, "training_dataset": "train.jsonl", "eval_datasets": {"id": "test.jsonl"}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(data))
    config = load_job_config(tmp_path / "job.yaml")
    assert config.training_dataset == (tmp_path / "train.jsonl").resolve()


def test_cli_exits_2_before_any_stage(
    job: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({**job, "method": {"type": "best"}}))
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = argparse.Namespace(config=str(tmp_path / "job.yaml"), out=str(out), cache_dir=str(cache))
    assert run(args) == 2
    assert "error: method.type:" in capsys.readouterr().err
    assert not out.exists() and not cache.exists()


def test_job_knobs_fill_defaults_and_round_trip() -> None:
    """The service's check: defaults echoed, errors named, same values as load_job_config."""
    from grait_engine.pipeline.knobs import JobKnobs

    knobs = JobKnobs.from_dict({"method": {"type": "grait", "n_ik": 5}, "training": {"epochs": 2}})
    resolved = knobs.to_dict()
    assert resolved["method"]["n_ik"] == 5 and resolved["method"]["n_idk"] == 1000
    assert resolved["method"]["variant"] == "stratified" and resolved["training"]["epochs"] == 2
    assert resolved["seed"] == 0 and resolved["tau"] == 0.5
    assert (
        JobKnobs.from_dict(resolved) == knobs and JobKnobs.from_dict(resolved).to_dict() == resolved
    )
    for bad, field in [
        ({"method": {"type": "nope"}}, "method.type"),
        ({"method": {"type": "van", "variant": "greedy"}}, "method.variant"),
        ({"method": {"type": "van"}, "training": {"epochs": 0}}, "training.epochs"),
        ({"method": {"type": "van"}, "seed": -1}, "seed"),
        ({}, "method"),
    ]:
        with pytest.raises(JobConfigError) as info:
            JobKnobs.from_dict(bad)
        assert info.value.field == field


def test_shots_dataset_is_optional_validated_and_echoed(
    job: dict[str, Any], tmp_path: Path
) -> None:
    assert load_job_config(job).resolved()["shots_dataset"] is None  # 0-shot probe
    config = load_job_config({**job, "shots_dataset": str(tmp_path / "test.jsonl")})
    assert config.resolved()["shots_dataset"] == str((tmp_path / "test.jsonl").resolve())
    with pytest.raises(JobConfigError) as caught:  # a dev split of the other task type
        load_job_config({**job, "shots_dataset": str(tmp_path / "open.jsonl")})
    assert caught.value.field == "shots_dataset"


def test_validated_files_are_checked_by_sha256_not_parsed(
    job: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file validated before (the service's upload) is not parsed again: its sha256 must
    match; a file changed since is an error naming the field."""
    import hashlib

    from grait_engine.records import validate

    digest = {
        name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        for name in ("train.jsonl", "test.jsonl")
    }
    validated = {
        "training_dataset": digest["train.jsonl"],
        "eval_datasets.id": digest["test.jsonl"],
    }

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a validated file was parsed again")

    monkeypatch.setattr(validate, "validate_file", no_parsing)
    config = load_job_config(job, validated=validated)
    assert config.training_dataset == (tmp_path / "train.jsonl").resolve()
    with pytest.raises(AssertionError, match="parsed again"):  # without: parsed as before
        load_job_config(job)
    with (tmp_path / "test.jsonl").open("a") as file:
        file.write(json.dumps({"id": "late", **CHOICE}) + "\n")
    with pytest.raises(JobConfigError) as caught:
        load_job_config(job, validated=validated)
    assert caught.value.field == "eval_datasets.id"
    assert "changed since it was validated" in caught.value.message


def test_job_config_holds_the_knobs(job: dict[str, Any]) -> None:
    """One ``JobKnobs``, read flat as before; the echo is the knobs' own mapping."""
    config = load_job_config(job)
    knobs = config.knobs
    assert (config.method, config.n_ik, config.n_idk, config.seed) == ("grait", 2, 2, 3)
    assert config.training is knobs.training and config.selection is knobs.selection
    assert config.probe is knobs.probe and config.runtime is knobs.runtime
    resolved = config.resolved()
    assert {k: resolved[k] for k in knobs.to_dict()} == knobs.to_dict()
