"""The stage contract: one base for every cancel error, one clock for a stage's events."""

from __future__ import annotations

from typing import Any

from grait_engine.stages import (
    STAGE_FINISHED,
    STAGE_STARTED,
    StageCallbacks,
    StageCancelled,
    StageClock,
)


def test_every_cancel_error_is_a_stage_cancelled() -> None:
    from grait_engine.evaluation.evaluate import EvaluationCancelled
    from grait_engine.features.stage import FeaturesCancelled
    from grait_engine.pipeline.run import JobCancelled
    from grait_engine.probe.stage import ProbeCancelled
    from grait_engine.selection.select import SelectionCancelled
    from grait_engine.training.stage import TrainingCancelled

    errors = (
        EvaluationCancelled, FeaturesCancelled, JobCancelled, ProbeCancelled,
        SelectionCancelled, TrainingCancelled,
    )  # fmt: skip
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


def test_every_stage_result_has_the_common_shape() -> None:
    from dataclasses import fields

    from grait_engine.features.stage import FeaturesResult
    from grait_engine.probe.split import SplitResult
    from grait_engine.probe.stage import ProbeResult
    from grait_engine.selection.select import SelectionResult
    from grait_engine.training.stage import TrainingResult

    for result in (ProbeResult, SplitResult, FeaturesResult, SelectionResult, TrainingResult):
        names = {field.name for field in fields(result)}
        assert {"directory", "skipped", "inputs_hash"} <= names, result
