"""Split test fixtures (``tiny``: the tiny Llama, to probe a pool to split)."""

from tests.engine.probe.pools import tiny  # noqa: F401
