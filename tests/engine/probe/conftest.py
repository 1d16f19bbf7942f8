"""Probe test fixtures (``tiny``: the tiny Llama loaded once per module)."""

from tests.engine.probe.pools import tiny  # noqa: F401
