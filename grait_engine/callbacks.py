"""The callbacks a stage takes from its caller (torch-free).

- ``ProgressFn(stage, done, total, message)``: after each batch or group of a long stage.
- ``CancelFn() -> bool``: checked at batch boundaries; True stops the stage (its
  ``...Cancelled`` error) with finished work kept.
- ``MetricFn(name, step, value)``: training curves (``train/loss``, ``train/lr``).
- ``NoticeFn(stage, message)``: something a user should know that is not an error, such as
  a batch halved after running out of memory (the service records a ``warning`` event).
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int, str], None]
CancelFn = Callable[[], bool]
MetricFn = Callable[[str, int, float], None]
NoticeFn = Callable[[str, str], None]
