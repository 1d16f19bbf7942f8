"""``execute_job`` in this process, on SQLite and PostgreSQL: an out-of-memory back-off ends
as a ``warning`` event of a job that still succeeds, and a job this worker cannot run as set
(4-bit without CUDA, a GPU it lacks) fails as ``invalid_config`` with a clear message.

Nothing here provokes a real out-of-memory error in a child process (that would need a
test hook in production code): the engine's batch loop is wrapped so that its first batch
of more than one row raises ``torch.OutOfMemoryError``, as CUDA's allocator does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.execution import lease
from app.main import create_app
from app.settings import Settings
from grait_engine import memory
from tests.app.helpers import new_key
from tests.app.job_helpers import events, job_body, job_settings, upload_world
from tests.app.test_reliability import ConnectionKiller
from worker import execute

pytestmark = pytest.mark.slow
OWNER = "test-runner"


@dataclass
class Api:
    """The API (no runner) with a tenant whose tiny-world datasets are uploaded."""

    client: TestClient
    auth: dict[str, str]
    ids: dict[str, str]
    settings: Settings

    def claimed_job(self, **extra: Any) -> str:
        """A cor_rait job created through the API and claimed by ``OWNER``."""
        response = self.client.post(
            "/v1/jobs", json=job_body(self.ids, "cor_rait", **extra), headers=self.auth
        )
        assert response.status_code == 201, response.text
        job_id = str(response.json()["id"])
        factory = self.client.app.state.session_factory  # type: ignore[attr-defined]
        assert lease.claim(factory, job_id, OWNER, 600) is not None
        return job_id

    def execute(self, job_id: str, **settings: Any) -> str:
        factory = self.client.app.state.session_factory  # type: ignore[attr-defined]
        chosen = self.settings.model_copy(update=settings)
        return execute.execute_job(factory, chosen, job_id, OWNER)

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/jobs/{job_id}", headers=self.auth).json())


@pytest.fixture
def api(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[Api]:
    settings = job_settings(
        tmp_path / "data", database_url, toyworld_dir, local_runner=False, device="cpu"
    )
    app = create_app(settings)
    before = torch.get_num_threads()  # execute_job sets this process's (to 1, the settings')
    with TestClient(app) as client:
        key, _ = new_key(app)
        auth = {"Authorization": f"Bearer {key}"}
        yield Api(client, auth, upload_world(client, auth, toyworld_dir), settings)
    torch.set_num_threads(before)
    app.state.engine.dispose()


def test_out_of_memory_back_off_is_a_warning_event(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = memory.process_in_batches
    failed: list[int] = []

    def first_big_batch_runs_out_of_memory(
        order: Any, batch_size: int, work: Any, **kw: Any
    ) -> int:
        def work_or_fail(rows: list[int]) -> None:
            if not failed and len(rows) > 1:
                failed.append(len(rows))
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            work(rows)

        return original(order, batch_size, work_or_fail, **kw)

    monkeypatch.setattr(memory, "process_in_batches", first_big_batch_runs_out_of_memory)
    job_id = api.claimed_job(runtime={"batch_size": 8})
    assert api.execute(job_id) == "succeeded"
    assert failed == [8]
    job = api.job(job_id)
    assert job["status"] == "succeeded" and job["error"] is None, job
    warnings = [e for e in events(api.client, api.auth, job_id) if e["type"] == "warning"]
    assert [(e["stage"], e["message"]) for e in warnings] == [
        ("probe", "out of memory at batch size 8: retrying with 4")
    ]


@pytest.mark.parametrize(
    ("case", "settings", "runtime", "message"),
    [
        (
            "the worker's check",
            {},
            {"quantization": "4bit"},
            "runtime.quantization: 4bit needs a CUDA device, but this worker computes on cpu",
        ),
        (
            "the engine's model loader",
            {},
            {"quantization": "4bit"},
            "quantization '4bit' needs a CUDA device, not cpu",
        ),
        (
            "a GPU the worker lacks",
            {"device": "cuda:1"},
            {},
            "GRAIT_DEVICE: cuda:1 requested, but this worker sees",
        ),
    ],
)
def test_what_this_worker_cannot_run_fails_as_invalid_config(
    api: Api,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    case: str,
    settings: dict[str, Any],
    runtime: dict[str, Any],
    message: str,
) -> None:
    if case == "the engine's model loader":
        # As on a worker whose own check passed: the engine's loader refuses (ModelLoadError).
        monkeypatch.setattr(execute, "check_quantization", lambda quantization, compute: None)
    if torch.cuda.is_available() and (runtime or settings):
        pytest.skip("this machine has a GPU")
    job_id = api.claimed_job(runtime=runtime)
    assert api.execute(job_id, **settings) == "failed"
    job = api.job(job_id)
    assert job["error"]["code"] == "invalid_config", job["error"]
    assert message in job["error"]["message"], job["error"]
    assert "Traceback" not in capfd.readouterr().err


def test_a_diverging_job_fails_as_diverged(api: Api) -> None:
    """lr 1e6 is a legal setting, but the loss becomes NaN: the job fails with ``diverged``
    (it used to succeed with an all-NaN adapter)."""
    hyper = {"lora_r": 4, "epochs": 1, "batch_size": 8, "lr": 1e6}
    job_id = api.claimed_job(hyperparameters=hyper)
    assert api.execute(job_id) == "failed"
    job = api.job(job_id)
    assert job["error"]["code"] == "diverged", job["error"]
    assert "lower hyperparameters.lr" in job["error"]["message"]
    assert job["result"] is None


def _lost_connection() -> OperationalError:
    error = OperationalError("UPDATE jobs SET stage=%(stage)s", {"stage": "x"}, Exception("gone"))
    error.connection_invalidated = True
    return error


def test_a_database_outage_records_nothing(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A transient database error that outlasts the recorder's retries is not a failure of
    the job: nothing is recorded, the child exits 75 and its runner gives the job back."""

    def outage(settings: Settings) -> None:
        raise _lost_connection()

    monkeypatch.setattr(execute, "set_up_compute", outage)
    job_id = api.claimed_job()
    assert api.execute(job_id) == execute.DATABASE_UNAVAILABLE
    job = api.job(job_id)
    assert (job["status"], job["error"], job["attempt"]) == ("running", None, 1)


def test_a_database_error_shows_no_sql(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error that is not transient fails the job with ``database_error`` and a
    plain message: no statement, no bound parameters (those go to the log only)."""

    def broken(settings: Settings) -> None:
        raise ProgrammingError(
            "SELECT secret_column FROM t WHERE x = %(x)s",
            {"x": "bound-value"},
            Exception("relation does not exist"),
        )

    monkeypatch.setattr(execute, "set_up_compute", broken)
    job_id = api.claimed_job()
    assert api.execute(job_id) == "failed"
    error = api.job(job_id)["error"]
    assert error == {"code": "database_error", "message": execute.DATABASE_ERROR_MESSAGE}


def test_stage_caches_are_per_tenant(api: Api, toyworld_dir: Path) -> None:
    """Another tenant running the same model, data and settings computes every stage
    itself (``cached: false``): a report never reveals another tenant's jobs."""
    first = api.claimed_job()
    assert api.execute(first) == "succeeded"
    key, _ = new_key(api.client.app)  # type: ignore[arg-type]
    other = Api(api.client, {"Authorization": f"Bearer {key}"}, {}, api.settings)
    other.ids = upload_world(other.client, other.auth, toyworld_dir)
    second = other.claimed_job()
    assert other.execute(second) == "succeeded"
    stages = other.client.get(f"/v1/jobs/{second}/report", headers=other.auth).json()["stages"]
    assert stages and not any(info["cached"] for info in stages.values()), stages
    cache = api.settings.stage_cache_dir
    assert cache is not None and len(list((cache / "tenants").iterdir())) == 2


def test_a_killed_connection_mid_job_does_not_fail_it(api: Api) -> None:
    """The job's database connection is really killed (``pg_terminate_backend`` on
    PostgreSQL) in the middle of a progress write, an event and a metrics flush: each write
    is retried on a new connection and the job succeeds on its first attempt (one lost
    connection used to fail it for good as ``stage_error``)."""
    job_id = api.claimed_job()
    engine = api.client.app.state.engine  # type: ignore[attr-defined]
    killer = ConnectionKiller(api.settings.database_url)
    killer.armed = {"UPDATE jobs", "INSERT INTO job_events", "INSERT INTO job_metrics"}
    event.listen(engine, "before_cursor_execute", killer)
    try:
        assert api.execute(job_id) == "succeeded"
    finally:
        event.remove(engine, "before_cursor_execute", killer)
    assert sorted(killer.killed) == [
        "INSERT INTO job_events",
        "INSERT INTO job_metrics",
        "UPDATE jobs",
    ]
    job = api.job(job_id)
    assert (job["status"], job["attempt"], job["error"]) == ("succeeded", 1, None)


def test_a_craft_job_with_a_shots_dataset_runs_through_the_service(api: Api) -> None:
    body = job_body(api.ids, "craft", shots_dataset=api.ids["test_ood"])
    response = api.client.post("/v1/jobs", json=body, headers=api.auth)
    assert response.status_code == 201, response.text
    job_id = str(response.json()["id"])
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    assert lease.claim(factory, job_id, OWNER, 600) is not None
    assert api.execute(job_id) == "succeeded", api.job(job_id)
    report = api.client.get(f"/v1/jobs/{job_id}/report", headers=api.auth).json()
    assert report["job"]["method"] == "craft"
    assert {"rehearse", "reprobe"} <= set(report["stages"])
    # The probe read the uploaded shots dataset (its stored file), not the pool.
    assert report["job"]["config"]["shots_dataset"] is not None
    assert any("knowledge flow" in note for note in report["selection"]["notes"])


def test_uploaded_datasets_are_checked_by_sha256_not_parsed_again(
    api: Api, monkeypatch: pytest.MonkeyPatch, toyworld_dir: Path
) -> None:
    """The worker builds a tune job's config from the stored knobs and checks each dataset
    file against its row's sha256: an unchanged file is not parsed again (the validator is
    never called), and a file whose bytes changed after the upload fails the job as
    ``invalid_config`` naming the field."""
    from grait_engine.records import validate
    from worker.compute import set_up_compute
    from worker.job_context import read_job_row
    from worker.tune_config import tune_job_config

    def no_parsing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an uploaded dataset was validated again")

    job_id = api.claimed_job(runtime={"batch_size": 2})
    factory = api.client.app.state.session_factory  # type: ignore[attr-defined]
    row = read_job_row(factory, api.settings, job_id)
    fields = {"training_dataset", "eval_datasets.id", "eval_datasets.ood"}
    assert set(row.dataset_sha256) == fields and set(row.dataset_paths) == fields
    monkeypatch.setattr(validate, "validate_file", no_parsing)
    model = str(toyworld_dir / "tiny-seed0" / "model")
    config = tune_job_config(row, model, api.settings, set_up_compute(api.settings))
    assert (config.method, config.n_ik, config.training.epochs) == ("cor_rait", 16, 1)
    assert config.runtime.batch_size == 2  # the job's; the worker's defaults fill the rest
    assert config.training_dataset == Path(row.dataset_paths["training_dataset"])

    with Path(row.dataset_paths["eval_datasets.ood"]).open("ab") as file:
        file.write(b"\n")  # still valid JSONL, but not the bytes that were validated
    assert api.execute(job_id) == "failed"
    error = api.job(job_id)["error"]
    assert error["code"] == "invalid_config", error
    assert error["message"].startswith("eval_datasets.ood: "), error
    assert "changed since it was validated" in error["message"], error
