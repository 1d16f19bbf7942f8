"""``execute_job``'s exception -> outcome table, on a real SQLite database, with the stage
function replaced by one that raises (no model, no torch work): what ``execute_job``
answers and what the job row holds afterwards (status, error code and message, lease).

- a cancel (any ``StageCancelled``) -> ``cancelled``;
- bad settings or inputs (``JobConfigError``, ``JobInputError``, ``ComputeError``,
  ``ModelLoadError``) -> ``failed``/``invalid_config``; ``Diverged`` -> ``diverged``;
- a database error, or one caused by it -> ``database_error`` with a fixed message (no SQL);
- a transient database error -> nothing recorded (``DATABASE_UNAVAILABLE``: given back);
- anything else -> ``stage_error`` "Type: message", cut at 2000 characters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from app.auth import create_api_key
from app.db.models import Job
from app.db.session import make_engine, make_session_factory, unit_of_work
from app.db.types import new_id
from app.execution import lease
from app.jobs.states import JobStatus
from app.settings import Settings
from grait_engine.errors import Diverged
from grait_engine.model_files import ModelLoadError
from grait_engine.pipeline.config import JobConfigError
from grait_engine.stages import StageCancelled
from worker import execute
from worker.compute import Compute, ComputeError

OWNER = "test-runner"
SQL = "UPDATE jobs SET secret_column=%(value)s"
FAILED, CANCELLED = JobStatus.FAILED, JobStatus.CANCELLED


class ProbeStopped(StageCancelled):
    """A stage's own cancel error (each stage has one, all ``StageCancelled``)."""


def programming_error() -> ProgrammingError:
    return ProgrammingError(SQL, {"value": "bound-secret"}, Exception("no such column"))


def lost_connection() -> OperationalError:
    error = OperationalError(SQL, {"value": "bound-secret"}, Exception("server closed"))
    error.connection_invalidated = True
    return error


def caused_by_database() -> Exception:
    """A plain error raised ``from`` a database error (``__cause__``)."""
    try:
        raise programming_error()
    except ProgrammingError as error:
        try:
            raise RuntimeError("could not save the stage") from error
        except RuntimeError as wrapped:
            return wrapped


def raised_while_handling_database() -> Exception:
    """A plain error raised while a database error was handled (``__context__`` only)."""
    try:
        raise IntegrityError(SQL, {"value": "bound-secret"}, Exception("duplicate key"))
    except IntegrityError:
        try:
            raise KeyError("cleanup")  # noqa: B904 (the implicit context is the point)
        except KeyError as wrapped:
            return wrapped


@dataclass
class Case:
    """An exception a stage raises -> what ``execute_job`` answers and the row's
    (status, error code, error message; None: any message, checked by ``check``)."""

    name: str
    error: Callable[[], BaseException]
    answer: str
    status: str
    code: str | None
    message: str | None
    check: Callable[[str], bool] | None = None


def failed(name: str, error: Callable[[], BaseException], code: str, message: str | None) -> Case:
    """A case that fails the job with ``code`` and ``message``."""
    return Case(name, error, "failed", FAILED, code, message)


def invalid(name: str, error: Callable[[], BaseException], message: str) -> Case:
    """A case that fails the job as ``invalid_config`` with ``message``."""
    return failed(name, error, "invalid_config", message)


LONG = "x" * 5000
DB_MESSAGE = execute.DATABASE_ERROR_MESSAGE
D1_DELETED = "dataset d1 was deleted"
CASES = [
    Case("stage-cancelled", lambda: StageCancelled("stop"), "cancelled", CANCELLED, None, None),
    Case("own-cancel", lambda: ProbeStopped("stop"), "cancelled", CANCELLED, None, None),
    invalid("job-config", lambda: JobConfigError("lr", "must be > 0"), "lr: must be > 0"),
    invalid(
        "job-input",
        lambda: execute.JobInputError("training_dataset", D1_DELETED),
        f"training_dataset: {D1_DELETED}",
    ),
    invalid("compute", lambda: ComputeError("device", "no GPU cuda:3"), "device: no GPU cuda:3"),
    invalid("model-load", lambda: ModelLoadError("no weights found"), "no weights found"),
    invalid("invalid-config-cut", lambda: JobConfigError("seed", LONG), f"seed: {LONG}"[:2000]),
    failed(
        "diverged", lambda: Diverged("loss is nan at step 3"), "diverged", "loss is nan at step 3"
    ),
    failed("database", programming_error, "database_error", DB_MESSAGE),
    failed("caused-by-database", caused_by_database, "database_error", DB_MESSAGE),
    failed("context-database", raised_while_handling_database, "database_error", DB_MESSAGE),
    Case("transient", lost_connection, execute.DATABASE_UNAVAILABLE, JobStatus.RUNNING, None, None),
    failed("other", lambda: ValueError("boom"), "stage_error", "ValueError: boom"),
    Case(
        "other-cut",
        lambda: RuntimeError(LONG),
        "failed",
        FAILED,
        "stage_error",
        None,
        lambda message: message == f"RuntimeError: {LONG}"[:2000] and len(message) == 2000,
    ),
]


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The worker's settings; torch is never set up (``set_up_compute`` answers a CPU)."""
    monkeypatch.setattr(execute, "set_up_compute", lambda settings: Compute("cpu", "float32", 1))
    return Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_url,
        local_runner=False,
        webhook_dispatcher=False,
    )


def claimed_job(factory: sessionmaker[Session], kind: str = "tune") -> str:
    """A job of a fresh tenant (no datasets), claimed by ``OWNER``; returns its id."""
    job_id = new_id("job")
    with unit_of_work(factory) as session:
        _, key = create_api_key(session, f"t-{uuid.uuid4().hex[:10]}")
        session.add(
            Job(
                id=job_id,
                tenant_id=key.tenant_id,
                kind=kind,
                model="toyworld/tiny",
                method="cor_rait",
                task="choice",
                config={},
            )
        )
    assert lease.claim(factory, job_id, OWNER, 600) is not None
    return job_id


def job_row(factory: sessionmaker[Session], job_id: str) -> Job:
    with unit_of_work(factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def raising(error: BaseException) -> Callable[..., Any]:
    def stage(*args: Any, **kwargs: Any) -> Any:
        raise error

    return stage


def check_row(job: Job, case: Case) -> None:
    assert job.status == case.status
    assert job.error_code == case.code
    if case.check is not None:
        assert job.error_message is not None and case.check(job.error_message)
    else:
        assert job.error_message == case.message
    assert job.result is None
    if case.status == JobStatus.RUNNING:  # given back by the runner, not here
        assert job.lease_owner == OWNER and job.finished_at is None
    else:
        assert job.lease_owner is None and job.finished_at is not None
    for secret in ("secret_column", "bound-secret", "UPDATE"):
        assert secret not in (job.error_message or "")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_tune_stage_error_maps_to_its_outcome(
    factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
) -> None:
    monkeypatch.setattr(execute, "_run_tune", raising(case.error()))
    job_id = claimed_job(factory)
    assert execute.execute_job(factory, settings, job_id, OWNER) == case.answer
    check_row(job_row(factory, job_id), case)


# The non-tune path (a ``KIND_RUNNERS`` function) maps the same way.
KIND_CASES = [case for case in CASES if case.name in ("own-cancel", "compute", "database", "other")]
RAISED: list[BaseException] = []


def raise_next(context: execute.JobContext) -> dict[str, Any]:
    """A kind runner (``KIND_RUNNERS`` names it by module path) that raises ``RAISED[0]``."""
    raise RAISED[0]


@pytest.mark.parametrize("case", KIND_CASES, ids=[case.name for case in KIND_CASES])
def test_a_kind_runner_error_maps_to_its_outcome(
    factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
) -> None:
    monkeypatch.setitem(execute.KIND_RUNNERS, "evaluate", f"{__name__}:raise_next")
    RAISED[:] = [case.error()]
    job_id = claimed_job(factory, kind="evaluate")
    try:
        assert execute.execute_job(factory, settings, job_id, OWNER) == case.answer
    finally:
        RAISED.clear()
    check_row(job_row(factory, job_id), case)


def test_success_records_the_summary(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = {"job": {"echoed": "config"}, "metrics": {"accuracy": 0.5}}
    monkeypatch.setattr(execute, "_run_tune", lambda *args, **kwargs: report)
    job_id = claimed_job(factory)
    assert execute.execute_job(factory, settings, job_id, OWNER) == "succeeded"
    job = job_row(factory, job_id)
    expected = {"metrics": {"accuracy": 0.5}}  # the echoed config is job.config already
    assert (job.status, job.error_code, job.result) == ("succeeded", None, expected)


def test_a_lost_lease_records_nothing(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage failed, but another runner owns the job now: ``lost``, its row untouched."""
    job_id = claimed_job(factory)

    def taken_over(*args: Any, **kwargs: Any) -> Any:
        with unit_of_work(factory) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.lease_owner = "runner-2"
        raise ValueError("boom")

    monkeypatch.setattr(execute, "_run_tune", taken_over)
    assert execute.execute_job(factory, settings, job_id, OWNER) == "lost"
    job = job_row(factory, job_id)
    assert (job.status, job.lease_owner, job.error_code) == ("running", "runner-2", None)


def test_an_outcome_write_that_meets_an_outage_gives_the_job_back(
    factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recording the outcome itself fails: transient -> ``DATABASE_UNAVAILABLE`` (nothing
    recorded); any other error propagates (the child crashes; its runner releases the job)."""
    monkeypatch.setattr(execute, "_run_tune", raising(ValueError("boom")))

    def finish_down(self: Any, *args: Any, **kwargs: Any) -> bool:
        raise lost_connection()

    monkeypatch.setattr(execute.JobRecorder, "finish", finish_down)
    job_id = claimed_job(factory)
    assert execute.execute_job(factory, settings, job_id, OWNER) == execute.DATABASE_UNAVAILABLE
    assert job_row(factory, job_id).status == "running"

    def finish_broken(self: Any, *args: Any, **kwargs: Any) -> bool:
        raise programming_error()

    monkeypatch.setattr(execute.JobRecorder, "finish", finish_broken)
    with pytest.raises(ProgrammingError):
        execute.execute_job(factory, settings, claimed_job(factory), OWNER)
