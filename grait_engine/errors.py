"""Errors shared by the engine's config modules (torch-free)."""

from __future__ import annotations

from typing import Any


class FieldError(ValueError):
    """A setting with a bad value: ``field`` names it, ``message`` says what is allowed.

    Every config module raises its own subclass (``ProbeConfigError``, ``JobConfigError``...),
    so callers can catch one stage's errors or all of them.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def reject_unknown_keys(
    config_class: type, values: dict[str, Any], error: type[FieldError], noun: str = "knob"
) -> None:
    """Raise ``error(key, ...)`` for the first key of ``values`` that is not a field of the
    dataclass ``config_class``: a typo in a config must never be ignored silently."""
    from dataclasses import fields

    known = {f.name for f in fields(config_class)}
    for key in values:
        if key not in known:
            raise error(str(key), f"unknown {noun}; known: {sorted(known)}")


class Diverged(ArithmeticError):
    """A stage's loss became NaN or infinite: the settings make training diverge (a
    learning rate far too high, say). Its result would be garbage, so the stage stops."""
