"""The stage contract: one base for every cancel error, one clock for a stage's events."""

from __future__ import annotations

from typing import Any

import pytest

from grait_engine.stages import (
    STAGE_FINISHED,
    STAGE_STARTED,
    StageCallbacks,
    StageCancelled,
    StageClock,
    StageTracker,
)


def test_every_cancel_error_is_a_stage_cancelled() -> None:
    from grait_engine.evaluation.evaluate import EvaluationCancelled
    from grait_engine.features.stage import FeaturesCancelled
    from grait_engine.pipeline.job import JobCancelled
    from grait_engine.probe.stage import ProbeCancelled
    from grait_engine.selection.stage import SelectionCancelled
    from grait_engine.training.stage import TrainingCancelled

    errors = (
        EvaluationCancelled,
        FeaturesCancelled,
        JobCancelled,
        ProbeCancelled,
        SelectionCancelled,
        TrainingCancelled,
    )
    for error in errors:
        assert issubclass(error, StageCancelled) and issubclass(error, RuntimeError), error


def test_clock_emits_started_then_the_reported_entry() -> None:
    heard: list[tuple[str, str, dict[str, Any]]] = []
    clock = StageClock("probe", lambda *event: heard.append(event))
    assert heard == [(STAGE_STARTED, "probe", {})]
    entry = clock.finish(True, base_cached=False)
    assert entry["cached"] is True and entry["seconds"] >= 0 and entry["base_cached"] is False
    assert heard[1] == (STAGE_FINISHED, "probe", entry)
    # Without a listener the clock still times the stage.
    assert StageClock("split", None).finish(False)["cached"] is False


def test_callbacks_cancelled() -> None:
    assert StageCallbacks().cancelled() is False
    assert StageCallbacks(cancel=lambda: True).cancelled() is True


def test_renamed_callbacks_report_under_the_new_stage() -> None:
    heard: list[tuple[str, int, int, str]] = []
    callbacks = StageCallbacks(progress=lambda *a: heard.append(a), cancel=lambda: False)
    renamed = callbacks.renamed("rehearse")
    renamed.report("train", 1, 2, "step 1/2")
    assert heard == [("rehearse", 1, 2, "step 1/2")] and renamed.cancel is callbacks.cancel
    assert StageCallbacks().renamed("rehearse") == StageCallbacks()
    StageCallbacks().report("train", 1, 2, "nobody listens")  # no progress callback: a no-op


def test_tracker_counts_reports_and_raises_the_stages_error() -> None:
    class Stopped(StageCancelled):
        pass

    heard: list[tuple[str, int, int, str]] = []
    asked = [False]
    callbacks = StageCallbacks(progress=lambda *a: heard.append(a), cancel=lambda: asked[0])
    tracker = StageTracker("probe", 10, callbacks, Stopped)
    tracker.advance(4, "4 done")
    tracker.check()  # not asked yet
    tracker.report("still 4")
    assert heard == [("probe", 4, 10, "4 done"), ("probe", 4, 10, "still 4")]
    asked[0] = True
    with pytest.raises(Stopped, match="after 4 of 10 items"):
        tracker.check()
    StageTracker("probe", 1, None, Stopped).check()  # no callbacks: never cancelled


def test_every_stage_result_has_the_common_shape() -> None:
    from dataclasses import fields

    from grait_engine.features.stage import FeaturesResult
    from grait_engine.probe.stage import ProbeResult
    from grait_engine.selection.stage import SelectionResult
    from grait_engine.split.stage import SplitResult
    from grait_engine.training.stage import TrainingResult

    for result in (ProbeResult, SplitResult, FeaturesResult, SelectionResult, TrainingResult):
        names = {field.name for field in fields(result)}
        assert {"directory", "skipped", "inputs_hash"} <= names, result
