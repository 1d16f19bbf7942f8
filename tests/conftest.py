"""Fixtures shared by every test package: the tiny toy world, built once per test session.

``toyworld_dir`` has the layout the service's runner uses for the built-in models
(``Settings.toyworld_dir``): the tiny world (seed 0) in ``<dir>/tiny-seed0``, so a job for
model ``toyworld/tiny`` finds it built. ``tiny_world`` is that world's ``ToyWorld``.
``GRAIT_TEST_TOYWORLD_DIR`` (optional) names a folder to build it in (or reuse it from)
across test sessions, instead of the session's temp dir (about 25 s to build idle).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def toyworld_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy world directory holding ``tiny-seed0`` (built here once). Do not modify."""
    from grait_engine.toyworld import build_toyworld, preset

    given = os.environ.get("GRAIT_TEST_TOYWORLD_DIR")
    root = Path(given) if given else tmp_path_factory.getbasetemp() / "toyworld"
    build_toyworld(preset("tiny", seed=0), root / "tiny-seed0")
    return root


@pytest.fixture(scope="session")
def tiny_world(toyworld_dir: Path) -> Any:
    """The ``tiny`` toy world (seed 0), shared by the whole session. Do not modify."""
    from grait_engine.toyworld import build_toyworld, preset

    return build_toyworld(preset("tiny", seed=0), toyworld_dir / "tiny-seed0")
