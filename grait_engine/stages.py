"""The stage contract (torch-free): the callbacks a stage takes, its cancel error, its clock.

Every stage is ``run_<stage>(config, inputs..., out_dir, *, seed, callbacks)`` in its
package's ``stage.py`` (``probe``, ``split``, ``features``, ``selection``, ``training``;
``seed`` where the stage draws random numbers) and returns a ``StageResult``.
``callbacks`` is one ``StageCallbacks`` (None: no callbacks); a stage uses the ones it needs.

Callbacks a stage (or a whole job) takes from its caller:

- ``ProgressFn(stage, done, total, message)``: after each batch or group of a long stage.
- ``CancelFn() -> bool``: checked at batch boundaries; True stops the stage (its
  ``StageCancelled`` error) with finished work kept.
- ``MetricFn(name, step, value)``: training curves (``train/loss``, ``train/lr``).
- ``NoticeFn(stage, message)``: something a user should know that is not an error, such as
  a batch halved after running out of memory (the service records a ``warning`` event).
- ``StageEventFn(event, stage, data)``: the pipeline's stage boundaries, for every stage of
  the report (cached ones included): ``STAGE_STARTED`` (``data`` empty) before the stage's
  work, ``STAGE_FINISHED`` after it with ``data`` = the report's entry of that stage
  (``seconds``, ``cached``, and for ``evaluate`` ``base_cached``): one clock for both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

ProgressFn = Callable[[str, int, int, str], None]
CancelFn = Callable[[], bool]
MetricFn = Callable[[str, int, float], None]
NoticeFn = Callable[[str, str], None]
StageEventFn = Callable[[str, str, dict[str, Any]], None]

STAGE_STARTED = "stage_started"
STAGE_FINISHED = "stage_finished"


class StageCancelled(RuntimeError):
    """The cancel callback asked to stop. Every stage's ``...Cancelled`` error (and the
    pipeline's ``JobCancelled``, seen between stages) is one of these."""


class StageResult(Protocol):
    """What every stage function returns (besides its own fields): the stage's output
    ``directory``, ``skipped`` when a complete output for the same ``inputs_hash`` (the
    content hash of everything the output depends on) was reused as it was."""

    @property
    def directory(self) -> Path: ...

    @property
    def skipped(self) -> bool: ...

    @property
    def inputs_hash(self) -> str: ...


@dataclass(frozen=True)
class StageCallbacks:
    """Everything a caller hears from (and tells) a running stage or job; each is optional.

    ``progress(stage, done, total, message)``: after each batch, group or step;
    ``cancel() -> bool``: asked at batch boundaries, True stops the stage;
    ``metric(name, step, value)``: training curves; ``notice(stage, message)``: what a user
    should know that is not an error; ``on_stage(event, stage, data)``: the pipeline's stage
    boundaries (stages themselves never call it).
    """

    progress: ProgressFn | None = None
    cancel: CancelFn | None = None
    metric: MetricFn | None = None
    notice: NoticeFn | None = None
    on_stage: StageEventFn | None = None

    def cancelled(self) -> bool:
        """True when the caller asked to stop (False without a cancel callback)."""
        return self.cancel is not None and bool(self.cancel())

    def report(self, stage: str, done: int, total: int, message: str) -> None:
        """``progress(stage, done, total, message)`` if there is a progress callback."""
        if self.progress is not None:
            self.progress(stage, done, total, message)

    def renamed(self, stage: str) -> StageCallbacks:
        """These callbacks with progress reported under ``stage`` (a stage function reused
        as another pipeline stage, e.g. training as ``rehearse``, names its own)."""
        progress = self.progress
        if progress is None:
            return self
        return replace(self, progress=lambda _stage, d, t, m: progress(stage, d, t, m))


class StageTracker:
    """Counts a stage's items, reports progress and raises the stage's cancel error.

    ``stage``: the name progress is reported under; ``total``: items of the stage;
    ``cancelled``: the stage's ``StageCancelled`` subclass, raised by ``check``.
    """

    def __init__(
        self,
        stage: str,
        total: int,
        callbacks: StageCallbacks | None,
        cancelled: type[StageCancelled],
    ) -> None:
        self.stage, self.total, self.done = stage, total, 0
        self.callbacks, self.cancelled = callbacks or StageCallbacks(), cancelled

    def report(self, message: str) -> None:
        """Progress at the current count."""
        self.callbacks.report(self.stage, self.done, self.total, message)

    def advance(self, n: int, message: str) -> None:
        """``n`` more items done, then progress."""
        self.done += n
        self.report(message)

    def check(self) -> None:
        """Raise the stage's cancel error if the caller asked to stop (finished work is
        the stage's to keep)."""
        if self.callbacks.cancelled():
            raise self.cancelled(f"cancelled after {self.done} of {self.total} items")


class StageClock:
    """The clock of one stage: created when the stage starts (emits ``STAGE_STARTED``);
    ``finish`` gives the report's entry of the stage and emits ``STAGE_FINISHED`` with it."""

    def __init__(self, stage: str, on_stage: StageEventFn | None) -> None:
        self.stage, self.on_stage = stage, on_stage
        if on_stage is not None:
            on_stage(STAGE_STARTED, stage, {})
        self.start = time.perf_counter()

    def finish(self, cached: bool, **extra: Any) -> dict[str, Any]:
        """``{"seconds", "cached", **extra}`` of the stage (seconds since it started);
        the same dict goes to ``on_stage(STAGE_FINISHED, stage, entry)``."""
        entry = {"seconds": round(time.perf_counter() - self.start, 3), "cached": bool(cached)}
        entry.update(extra)
        if self.on_stage is not None:
            self.on_stage(STAGE_FINISHED, self.stage, dict(entry))
        return entry
