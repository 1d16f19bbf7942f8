"""The comparison statistics (grait_engine.reporting.compare), with hand-computed values."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from grait_engine.reporting.compare import (
    PairedRun,
    paired_run,
    read_labels,
    stat,
    summary_row,
    ths_difference,
    ths_of_labels,
)


def labels(**counts: int) -> list[str]:
    """A label vector with the given count of each label, e.g. labels(correct=3, wrong=2)."""
    return [label for label, n in counts.items() for _ in range(n)]


def test_read_labels_reads_the_predictions_of_a_job_folder(tmp_path):
    folder = tmp_path / "eval" / "id" / "tuned"
    folder.mkdir(parents=True)
    rows = [
        {"id": "b", "output": "C", "label": "wrong"},
        {"id": "a", "output": "I don't know.", "label": "refused"},
    ]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = read_labels(tmp_path, "id", "tuned")
    assert got == {"b": "wrong", "a": "refused"}
    assert list(got) == ["b", "a"]  # file order
    with pytest.raises(FileNotFoundError):
        read_labels(tmp_path, "ood", "tuned")


@pytest.mark.parametrize(
    ("basic", "tuned", "expected"),
    [
        # METHOD.md check values, (Pc0, Pw0) = (50, 50)
        (labels(correct=5, wrong=5), labels(correct=3, wrong=2, refused=5), 10.0),
        (labels(correct=10, wrong=10), labels(correct=6, wrong=3, refused=11), 15.0),
        (labels(correct=5, wrong=5), labels(correct=5, refused=5), 50.0),
        (labels(correct=5, wrong=5), labels(correct=10), 100.0),
        # (66.8, 33.1) with one unparsed item: (53.3, 9.6) -> 33.9
        (
            labels(correct=668, wrong=331, unparsed=1),
            labels(correct=533, wrong=96, refused=371),
            53.3 - 9.6 * 66.8 / 33.1,
        ),
    ],
)
def test_ths_of_labels_matches_the_method_check_values(basic, tuned, expected):
    assert ths_of_labels(tuned, basic) == pytest.approx(expected)
    assert ths_of_labels(basic, basic) == pytest.approx(0.0)


def test_ths_of_labels_is_undefined_without_wrong_answers_of_the_base():
    assert ths_of_labels(labels(correct=2), labels(correct=1, refused=1)) is None


def test_paired_run_aligns_labels_in_the_base_order_and_checks_the_items():
    run = paired_run(
        0,
        1,
        {"x": "wrong", "y": "correct"},
        {"y": "refused", "x": "correct"},
        {"x": "wrong", "y": "wrong"},
    )
    assert run == PairedRun(0, 1, ("wrong", "correct"), ("correct", "refused"), ("wrong", "wrong"))
    with pytest.raises(ValueError, match="labels of b"):
        paired_run(0, 1, {"x": "wrong"}, {"x": "wrong"}, {"z": "wrong"})


def test_identical_methods_give_a_zero_width_interval_at_zero():
    rng = random.Random(0)
    runs = []
    for world in (0, 1):
        basic = [rng.choice(["correct", "wrong", "refused"]) for _ in range(50)]
        for seed in (0, 1, 2):
            tuned = tuple(rng.choice(["correct", "wrong", "refused"]) for _ in range(50))
            runs.append(PairedRun(world, seed, tuple(basic), tuned, tuned))
    diff = ths_difference(runs, n_resamples=500)
    assert (diff.mean, diff.ci_low, diff.ci_high) == (0.0, 0.0, 0.0)
    assert (diff.n_runs, diff.n_resamples) == (6, 500)


def test_a_constant_difference_has_no_spread():
    # init_basic always wrong: Pc0 = 0, so THS = Pc whatever the resample; A answers every
    # item right (THS 100), B refuses every item (THS 0): the difference is 100 in every one.
    runs = [PairedRun(0, s, ("wrong",) * 20, ("correct",) * 20, ("refused",) * 20) for s in (0, 1)]
    diff = ths_difference(runs, n_resamples=200)
    assert (diff.mean, diff.ci_low, diff.ci_high) == (100.0, 100.0, 100.0)


def test_the_interval_contains_the_true_difference_and_swaps_sign():
    # Base: half right, half wrong (Pc0 = Pw0, so THS = Pc - Pw). Per item, A answers right
    # with probability 0.6 and wrong 0.1 (expected THS 50); B right 0.5 and wrong 0.2
    # (expected THS 30): the true difference is 20.
    rng = random.Random(7)

    def draw(p_correct: float, p_wrong: float) -> str:
        u = rng.random()
        return "correct" if u < p_correct else "wrong" if u < p_correct + p_wrong else "refused"

    runs = []
    for world in ("w0", "w1", "w2"):
        basic = tuple(["correct", "wrong"] * 200)
        for seed in (0, 1):
            a = tuple(draw(0.6, 0.1) for _ in basic)
            b = tuple(draw(0.5, 0.2) for _ in basic)
            runs.append(PairedRun(world, seed, basic, a, b))
    diff = ths_difference(runs, n_resamples=1000, seed=3)
    assert diff.ci_low < 20 < diff.ci_high
    assert diff.ci_low < diff.mean < diff.ci_high
    assert diff.ci_high - diff.ci_low < 10  # 2,400 paired items: a few points wide
    # Deterministic for a seed; B minus A mirrors A minus B.
    assert ths_difference(runs, n_resamples=1000, seed=3) == diff
    swapped = [PairedRun(r.world, r.seed, r.basic, r.b, r.a) for r in runs]
    mirror = ths_difference(swapped, n_resamples=1000, seed=3)
    assert mirror.mean == pytest.approx(-diff.mean)
    assert mirror.ci_low == pytest.approx(-diff.ci_high)
    assert mirror.ci_high == pytest.approx(-diff.ci_low)


def test_resamples_use_one_draw_per_world_for_all_seeds():
    # Two seeds of a world with opposite methods: paired by item, their differences cancel
    # in every resample only if both seeds see the same draw.
    basic = tuple(["correct", "wrong"] * 10)
    a = tuple(["correct", "refused"] * 5 + ["wrong", "wrong"] * 5)
    b = tuple(["refused", "wrong"] * 10)
    runs = [PairedRun(0, 0, basic, a, b), PairedRun(0, 1, basic, b, a)]
    diff = ths_difference(runs, n_resamples=300)
    assert diff.mean == pytest.approx(0.0)
    assert diff.ci_low == pytest.approx(0.0) and diff.ci_high == pytest.approx(0.0)


def test_ths_difference_undefined_and_bad_inputs():
    runs = [PairedRun(0, 0, ("correct",) * 3, ("correct",) * 3, ("refused",) * 3)]
    assert ths_difference(runs).mean is None
    with pytest.raises(ValueError, match="no runs"):
        ths_difference([])
    uneven = [
        PairedRun(0, 0, ("wrong",) * 3, ("wrong",) * 3, ("wrong",) * 3),
        PairedRun(0, 1, ("wrong",) * 4, ("wrong",) * 4, ("wrong",) * 4),
    ]
    with pytest.raises(ValueError, match="different numbers"):
        ths_difference(uneven)


def test_summary_row_means_and_sds_over_runs():
    def block(pc, pw, ths, pr_unknown, pr_known):
        return {
            "n": 10,
            "pc": pc,
            "pw": pw,
            "pr": 100 - pc - pw,
            "unparsed": 0.0,
            "ths": ths,
            "oracle_share": ths / 50,
            "f1": pc,
            "by_known": {
                "known": {"n": 5, "pc": 0, "pw": 0, "pr": pr_known},
                "unknown": {"n": 5, "pc": 0, "pw": 0, "pr": pr_unknown},
            },
        }

    row = summary_row([block(40, 20, 10, 60, 4), block(50, 10, 30, 80, 8)])
    assert row["pc"].mean == 45 and row["pc"].sd == pytest.approx(7.0710678)
    assert row["ths"].mean == 20 and row["ths"].sd == pytest.approx(14.1421356)
    assert row["oracle_share"].mean == pytest.approx(0.4)
    assert row["pr"].mean == 40 and row["f1"].mean == 45
    assert (row["pr_unknown"].mean, row["pr_known"].mean) == (70, 6)
    assert row["ths"].n == 2
    # init_basic has no THS and items without ground truth no by_known: undefined, not 0.
    base = summary_row([{"n": 10, "pc": 50.0, "pw": 50.0, "pr": 0.0, "f1": 50.0}])
    assert base["ths"].mean is None and base["ths"].n == 0
    assert base["pr_unknown"].mean is None
    assert base["pc"].sd == 0.0


def test_stat_ignores_undefined_values():
    assert stat([1.0, None, 3.0]).mean == 2.0
    assert stat([None]).mean is None


def test_compare_loads_without_torch():
    code = "import sys, grait_engine.reporting.compare; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
