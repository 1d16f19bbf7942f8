"""Evaluation jobs in the engine (``run_evaluation``) on the tiny toy world: M0's cached
predictions are shared with tune jobs both ways, a stored adapter gives the tune job's own
tuned predictions, a base model gets its knowledge histogram, and a cancel stops it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grait_engine.pipeline.config import load_job_config
from grait_engine.pipeline.evaluation_job import knowledge_summary, run_evaluation
from grait_engine.pipeline.job import JobCancelled
from grait_engine.pipeline.run import run_job
from tests.tiny_jobs import tiny_job

MODELS = ("init_basic", "init_refuse", "tuned")


def _predictions(folder: Path, test_set: str, model: str) -> str:
    return (folder / "eval" / test_set / model / "predictions.jsonl").read_text()


def test_evaluations_share_m0_with_tune_jobs_and_reuse_the_adapter(
    tiny_world: Any, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    test_id = tiny_world.data_path("choice", "test_id")
    test_ood = tiny_world.data_path("choice", "test_ood")

    # A base-model evaluation first, on a fresh cache: M0 decoded, knowledge probed.
    base = run_evaluation(
        tiny_world.model_dir,
        "choice",
        {"id": test_id, "ood": test_ood},
        tmp_path / "base",
        cache,
        job={"id": "job_base", "model": "tiny"},
    )
    assert base["job"]["kind"] == "evaluate" and base["job"]["id"] == "job_base"
    assert base["stages"]["evaluate"]["base_cached"] is False
    assert base["stages"]["probe"]["cached"] is False
    for name in ("id", "ood"):
        assert set(base["eval"][name]) == {"init_basic", "init_refuse"}
        entry = base["knowledge"][name]
        assert entry["n"] == 40 and sum(entry["counts"]) == 40
        correctness = json.loads((tmp_path / "base" / "knowledge" / f"{name}.json").read_text())
        values = list(correctness["correctness"].values())
        assert entry["known_share"] == pytest.approx(100 * sum(v >= 0.5 for v in values) / 40)
        assert 0.0 <= entry["auroc_known"] <= 1.0  # the tiny world's items carry meta.known
    saved = json.loads((tmp_path / "base" / "report.json").read_text())
    assert saved == base
    markdown = (tmp_path / "base" / "report.md").read_text()
    assert "| id | init_refuse |" in markdown and "What the base model knows: ood" in markdown
    assert "| tuned |" not in markdown

    # A tune job on the same cache reuses those M0 predictions (and the reverse below).
    tuned_dir = tmp_path / "tune"
    config = load_job_config(tiny_job(tiny_world, {"type": "cor_rait", "n_ik": 8, "n_idk": 8}))
    tune = run_job(config, tuned_dir, cache)
    assert tune["stages"]["evaluate"]["base_cached"] is True
    assert tune["eval"]["id"]["init_basic"] == base["eval"]["id"]["init_basic"]

    # The tuned model from its stored adapter: the tune job's own predictions, M0 cached.
    again = run_evaluation(
        tiny_world.model_dir,
        "choice",
        {"again": test_id},
        tmp_path / "again",
        cache,
        adapter_dir=tuned_dir / "adapter",
    )
    assert again["stages"]["evaluate"]["base_cached"] is True
    assert "knowledge" not in again and "probe" not in again["stages"]
    assert again["eval"]["again"] == tune["eval"]["id"]
    for model in MODELS:
        assert _predictions(tmp_path / "again", "again", model) == _predictions(
            tuned_dir, "id", model
        ), model
    assert "| again | tuned |" in (tmp_path / "again" / "report.md").read_text()

    # A second base-model evaluation decodes nothing and probes nothing.
    repeat = run_evaluation(tiny_world.model_dir, "choice", {"id": test_id}, tmp_path / "r", cache)
    assert repeat["stages"]["probe"]["cached"] and repeat["stages"]["evaluate"]["cached"]
    assert repeat["knowledge"]["id"] == base["knowledge"]["id"]


def test_a_cancel_stops_an_evaluation(tiny_world: Any, tmp_path: Path) -> None:
    sets = {"id": tiny_world.data_path("choice", "test_id")}
    with pytest.raises(JobCancelled):
        run_evaluation(
            tiny_world.model_dir,
            "choice",
            sets,
            tmp_path / "o",
            tmp_path / "c",
            cancel=lambda: True,
        )
    assert not (tmp_path / "o" / "report.json").exists()


def test_knowledge_summary_bins_and_share() -> None:
    known = [False, True, False, True, False, True]
    summary = knowledge_summary([0.0, 0.05, 0.5, 0.55, 0.99, 1.0], 0.5, known)
    assert summary["counts"] == [2, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert summary["bins"][0] == 0.0 and summary["bins"][-1] == 1.0
    assert summary["known_share"] == pytest.approx(100 * 4 / 6)
    assert summary["mean_correctness"] == pytest.approx(3.09 / 6)
    # Known items score 0.05, 0.55, 1.0; unknown 0, 0.5, 0.99: 6 of 9 pairs ranked right.
    assert summary["auroc_known"] == pytest.approx(6 / 9)
    assert "auroc_known" not in knowledge_summary([0.2], 0.5)
    assert knowledge_summary([0.2, 0.8], 0.5, [True, True])["auroc_known"] is None
