"""The real service for the client tests: uvicorn on a free port in a thread (SQLite under
the test's temp dir, local runner), a tenant key, and a ``grait`` runner capturing output.

The tiny toy world is built once per session (about 25 s idle); ``GRAIT_TEST_TOYWORLD_DIR``
(optional) names a folder whose ``tiny-seed0`` is reused instead. Job children run with one
torch thread (``torch_threads=1`` in the service's settings; ``GRAIT_TORCH_THREADS=1`` for
``grait demo``, which builds its own settings). Every wait is bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from grait_cli.inprocess import serve_in_thread
from grait_cli.main import main

# A grait job that takes seconds on the tiny world (tiny budgets and projections).
TINY_JOB = {
    "model": "toyworld/tiny",
    "task": "choice",
    "method": {"type": "grait", "n_ik": 16, "n_idk": 16},
    "probe": {"choice_shots": 1},
    "features": {"dim": 256, "lora_r": 4, "warmup_max_items": 32},
    "hyperparameters": {"lora_r": 4, "epochs": 1, "batch_size": 8},
}


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class Service:
    url: str
    key: str
    artifacts: Path


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread here and in the job children of any service started here (the
    demo's too: the runner sets a child's threads from its settings, not from its own
    OMP_NUM_THREADS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        patch.setenv("MKL_NUM_THREADS", "1")
        patch.setenv("GRAIT_TORCH_THREADS", "1")
        yield


@pytest.fixture(scope="session")
def tiny_toyworld(toyworld_dir: Path) -> Path:
    """A folder with ``tiny-seed0`` built (the session's, see tests/conftest.py)."""
    return toyworld_dir


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_toyworld: Path) -> Iterator[Service]:
    """The service on a free port with a key of tenant ``acme``."""
    from app.auth import create_api_key
    from app.db.session import unit_of_work
    from app.main import create_app
    from app.settings import Settings

    data = tmp_path_factory.mktemp("cli-service")
    settings = Settings(
        data_dir=data,
        toyworld_dir=tiny_toyworld,
        database_url=f"sqlite:///{data}/grait.db",
        artifact_dir=data / "artifacts",
        stage_cache_dir=data / "cache",
        lease_seconds=10,
        cancel_grace_seconds=10,
        torch_threads=1,
    )
    app = create_app(settings)
    with serve_in_thread(app) as url:
        with unit_of_work(app.state.session_factory) as session:
            key, _ = create_api_key(session, "acme")
        yield Service(url=url, key=key, artifacts=settings.artifacts)


@pytest.fixture
def grait(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``grait ARGS...`` in this process; returns its exit code, stdout and stderr."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        rc = main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        return Result(rc, captured.out, captured.err)

    return run


@pytest.fixture
def client_grait(grait: Callable[..., Result], service: Service) -> Callable[..., Result]:
    """``grait`` with ``--url`` and ``--api-key`` of the test service appended."""

    def run(*argv: str) -> Result:
        return grait(*argv, "--url", service.url, "--api-key", service.key)

    return run
