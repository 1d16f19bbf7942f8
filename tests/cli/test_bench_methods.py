"""``bench/methods.py`` end to end on the tiny world: the results files' shape, resuming a
work folder, and the clear refusal of ``--split val`` on a world without validation splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from grait_engine.machine import cpu_model
from grait_engine.toyworld.config import VERSION

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "methods.py"
# Tiny budgets, one epoch, small features: a few seconds per job.
FAST = [
    "--size",
    "tiny",
    "--worlds",
    "0",
    "--seeds",
    "0",
    "--tasks",
    "choice",
    "--n-ik",
    "8",
    "--n-idk",
    "8",
    "--epochs",
    "1",
    "--lora-r",
    "4",
    "--features-dim",
    "256",
    "--bootstrap",
    "200",
]


def bench(*args: str, toyworld_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run the script as a user would (its own sys.path handling), one torch thread."""
    env = {**os.environ, "GRAIT_CACHE_DIR": str(toyworld_dir.parent)}
    command = [sys.executable, str(SCRIPT), *args, "--worlds-dir", str(toyworld_dir)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_bench_methods_writes_results_in_the_issue_shape(tmp_path, toyworld_dir):
    out, doc, work = tmp_path / "results.md", tmp_path / "results.json", tmp_path / "work"
    files = ["--out", str(out), "--json", str(doc), "--work", str(work)]
    variants = ["--target-loss", "decision", "--answer-gradient", "rms"]
    variants += ["--probe-temperature", "0.5", "--warmup-epochs", "2", "--feature-checkpoints", "2"]
    done = bench(
        *FAST, *variants, "--methods", "cor_rait", "grait", *files, toyworld_dir=toyworld_dir
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(doc.read_text())
    assert set(results) >= {"meta", "runs", "summary", "deltas"}
    meta = results["meta"]
    assert meta["size"] == "tiny" and meta["seeds"] == [0] and meta["split"] == "test"
    assert meta["recipe"]["training"] == {"epochs": 1, "lora_r": 4, "target_loss": "decision"}
    assert meta["recipe"]["probe"] == {"temperature": 0.5}
    config = json.loads(doc.read_text())["runs"][1]["report"]["job"]["config"]
    assert config["training"]["target_loss"] == "decision"
    assert config["features"]["answer_gradient"] == "rms"
    assert config["features"]["warmup_epochs"] == config["features"]["checkpoints"] == 2
    assert config["probe"]["temperature"] == 0.5
    assert meta["resolved"]["budget"] == {"n_ik": 8, "n_idk": 8}
    assert meta["machine"]["cpu_capability"] and meta["machine"]["torch_threads"] == 1
    assert meta["worlds"]["0"]["build_cpu_capability"] and "known_share" in meta["worlds"]["0"]
    assert meta["worlds"]["0"]["build_cpu_model"] == meta["machine"]["cpu_model"] == cpu_model()
    assert meta["worlds"]["0"]["version"] == VERSION
    assert [(r["world"], r["seed"], r["task"], r["method"]) for r in results["runs"]] == [
        (0, 0, "choice", "cor_rait"),
        (0, 0, "choice", "grait"),
    ]
    assert results["runs"][1]["report"]["eval"]["id"]["tuned"]["n"] == 40
    summary = results["summary"]["choice"]
    assert set(summary) == {"id", "ood"}
    assert set(summary["id"]) == {"init_basic", "init_refuse", "cor_rait", "grait"}
    keys = {
        "ths_mean",
        "ths_sd",
        "oracle_share_mean",
        "f1_mean",
        "pr_unknown_mean",
        "pr_known_mean",
    }
    assert keys <= set(summary["id"]["grait"])
    assert (
        summary["id"]["grait"]["ths_mean"]
        == (results["runs"][1]["report"]["eval"]["id"]["tuned"]["ths"])
    )
    assert summary["id"]["init_basic"]["ths_mean"] == 0.0
    delta = results["deltas"]["choice"]["ood"]["cor_rait"]
    assert set(delta) >= {"mean", "ci_low", "ci_high"}
    assert delta["ci_low"] <= delta["mean"] <= delta["ci_high"]
    text = out.read_text()
    assert "## choice, ID" in text and "## choice, OOD" in text
    assert "| grait minus | pooled | world 0 |" in text and "Pr unknown" in text

    # The same work folder again: every job is reused, the figures are the same.
    again = bench(
        *FAST, *variants, "--methods", "cor_rait", "grait", *files, toyworld_dir=toyworld_dir
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("(reused)") == 2
    assert json.loads(doc.read_text())["deltas"] == results["deltas"]


def test_bench_methods_refuses_the_val_split_of_a_world_without_one(tmp_path, toyworld_dir):
    out = tmp_path / "results.md"
    done = bench(
        *FAST,
        "--split",
        "val",
        "--out",
        str(out),
        "--json",
        str(tmp_path / "r.json"),
        toyworld_dir=toyworld_dir,
    )
    assert done.returncode == 2
    assert "--split val needs a world with validation splits" in done.stderr
    assert not out.exists()
