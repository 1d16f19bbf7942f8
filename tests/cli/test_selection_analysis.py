"""``bench/selection_analysis.py``: its figures on a finished tiny-world grait job, and its
linear probe on data whose answer is known."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import torch

from tests.cli.test_bench_methods import FAST, ROOT, bench

SCRIPT = ROOT / "bench" / "selection_analysis.py"


def load_script():
    spec = importlib.util.spec_from_file_location("selection_analysis", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_linear_probe_separates_separable_data_and_not_noise():
    analysis = load_script()
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (400,), generator=generator)
    noise = torch.randn(400, 6, generator=generator, dtype=torch.float64)
    signal = noise.clone()
    signal[:, 0] += 3.0 * (2 * labels - 1)
    assert analysis.linear_probe_auroc(signal, labels) > 0.95
    assert 0.35 < analysis.linear_probe_auroc(noise, labels) < 0.65


def test_pick_profile_counts_truth():
    analysis = load_script()
    truth = {
        "a": {"known": True, "seen": 4, "relation": "r1"},
        "b": {"known": False, "seen": 0, "relation": "r1"},
        "c": {"known": False, "seen": 2, "relation": "r2"},
        "d": {"known": False, "seen": 6, "relation": "r2"},
    }
    pool = analysis.Counter(v["relation"] for v in truth.values())
    profile = analysis.pick_profile(["a", "b"], truth, pool)
    assert profile == {
        "n": 2,
        "known_share": 0.5,
        "mean_seen": 2.0,
        "top_relation_share": 1.0,
        "relation_entropy": 0.0,
    }
    assert analysis.pick_profile(["a", "c"], truth, pool)["relation_entropy"] == 1.0


def test_analysis_of_a_finished_job(tmp_path, toyworld_dir):
    work = tmp_path / "work"
    files = [
        "--out",
        str(tmp_path / "r.md"),
        "--json",
        str(tmp_path / "r.json"),
        "--work",
        str(work),
    ]
    done = bench(*FAST, "--methods", "grait", *files, toyworld_dir=toyworld_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    out, plot = tmp_path / "analysis.json", tmp_path / "analysis.png"
    command = [
        sys.executable,
        str(SCRIPT),
        "--work",
        str(work),
        "--worlds-dir",
        str(toyworld_dir),
        "--size",
        "tiny",
        "--tasks",
        "choice",
        "--variants",
        "greedy",
        "stratified",
        "random",
        "--json",
        str(out),
        "--plot",
        str(plot),
    ]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(out.read_text())["choice-w0-s0"]
    report = json.loads((work / "jobs" / "choice-w0-s0-grait" / "report.json").read_text())
    assert result["pool"]["n"] == report["split"]["n_idk"]
    assert set(result["variants"]) == {"greedy", "stratified", "random"}
    # The job ran the default variant: the analysis re-runs it to the same picks.
    selection = json.loads((work / "jobs" / "choice-w0-s0-grait" / "selection.json").read_text())
    assert result["variants"][selection["variant"]]["n"] == selection["n_idk"]
    for profile in result["variants"].values():
        assert 0.0 <= profile["known_share"] <= 1.0 and profile["n"] == 8
    assert set(result["scores"]) == {"greedy_start", "alpha", "answer_cos_to_ik_answers"}
    assert all(0.0 <= v <= 1.0 for v in result["linear_probe"].values())
    assert plot.read_bytes()[:4] == b"\x89PNG"
