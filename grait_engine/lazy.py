"""Lazy package exports: names whose modules load torch are imported on first use.

A package ``__init__`` that lists its public names this way stays torch-free to import, so
the service can import the package's config modules (``grait_engine.TORCH_FREE_MODULES``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``where[name]`` is the module that
    defines ``name``, imported when ``name`` is first read."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
