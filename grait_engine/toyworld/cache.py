"""The toy worlds' shared cache: ``<cache>/toyworld/<size>-seed<seed>``.

``<cache>`` is ``$GRAIT_CACHE_DIR``, else ``~/.cache/grait``. ``grait demo`` and the
benchmarks take their worlds from here, and the service's runner finds model
``toyworld/<size>`` in the demo's copy.
"""

from __future__ import annotations

import os
from pathlib import Path

from grait_engine.toyworld.build import Progress, ToyWorld, build_toyworld
from grait_engine.toyworld.config import preset


def default_cache_dir() -> Path:
    """Where toy worlds are cached: ``$GRAIT_CACHE_DIR`` or ``~/.cache/grait``."""
    return Path(os.environ.get("GRAIT_CACHE_DIR") or Path.home() / ".cache" / "grait")


def ensure_world(
    size: str = "small",
    seed: int = 0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> ToyWorld:
    """The toy world of ``size`` and ``seed`` from ``cache_dir`` (default
    ``default_cache_dir()``), built there when missing.

    ``progress(step, done, total, message)`` is called while building (the command line
    passes its progress bars). Side effects: may write the world's folder (minutes).
    """
    out = (cache_dir or default_cache_dir()) / "toyworld" / f"{size}-seed{seed}"
    return build_toyworld(preset(size, seed), out, progress=progress)
