"""Errors shared by the engine's config modules (torch-free)."""

from __future__ import annotations


class FieldError(ValueError):
    """A setting with a bad value: ``field`` names it, ``message`` says what is allowed.

    Every config module raises its own subclass (``ProbeConfigError``, ``JobConfigError``...),
    so callers can catch one stage's errors or all of them.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
