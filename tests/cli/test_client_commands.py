"""Every ``grait datasets`` / ``grait jobs`` command against the real service (tiny world)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from grait_cli.inprocess import free_port
from tests.cli.conftest import TINY_JOB, Result, Service

Grait = Callable[..., Result]


def upload(client_grait: Grait, path: Path, task: str = "choice") -> str:
    result = client_grait("datasets", "upload", path, "--task", task)
    assert result.rc == 0, result.err
    match = re.search(r"\b(ds_[0-9a-f]+)\b", result.out)
    assert match, result.out
    return match.group(1)


def test_datasets_upload_list_show(client_grait: Grait, tiny_toyworld: Path) -> None:
    path = tiny_toyworld / "tiny-seed0" / "data" / "choice" / "test_id.jsonl"
    dataset_id = upload(client_grait, path)
    listed = client_grait("datasets", "list")
    assert listed.rc == 0 and dataset_id in listed.out and "test_id.jsonl" in listed.out
    shown = client_grait("datasets", "show", dataset_id)
    assert shown.rc == 0
    document = json.loads(shown.out)
    assert document["id"] == dataset_id and document["n_items"] == 40
    assert document["task"] == "choice"


def test_invalid_upload_prints_each_problem_with_its_line(
    client_grait: Grait, tmp_path: Path
) -> None:
    good = {"id": "q1", "question": "Where?", "answers": ["Here"]}
    lines = [json.dumps(good), '{"id": "q2", "question": "Who?"}', "not json", json.dumps(good)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    result = client_grait("datasets", "upload", bad, "--task", "open")
    assert result.rc == 1
    assert result.err.startswith("error: Invalid dataset: ")
    problem_lines = [line.strip() for line in result.err.splitlines()[1:]]
    assert [line.split(":")[0] for line in problem_lines] == ["line 2", "line 3", "line 4"]
    assert all(line.count(": ") >= 2 for line in problem_lines), problem_lines


def test_problems_exit_1_with_title_and_detail(
    client_grait: Grait, grait: Grait, service: Service
) -> None:
    missing = client_grait("jobs", "show", "job_nope")
    assert missing.rc == 1
    assert missing.err.strip() == "error: Not found: no job 'job_nope'"
    unauthorized = grait("datasets", "list", "--url", service.url, "--api-key", "grait_x_y")
    assert unauthorized.rc == 1 and unauthorized.err.startswith("error: Unauthorized: ")
    not_finished = client_grait("jobs", "report", "job_nope")
    assert not_finished.rc == 1 and "Not found" in not_finished.err


def test_environment_gives_url_and_key(
    grait: Grait, service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAIT_URL", service.url)
    monkeypatch.setenv("GRAIT_API_KEY", service.key)
    result = grait("jobs", "list")
    assert result.rc == 0 and result.out.startswith("id")


def test_unreachable_service_is_named(grait: Grait) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = grait("jobs", "list", "--url", url, "--api-key", "k")
    assert result.rc == 1
    assert f"could not reach the GRAIT service at {url}" in result.err


def create_tiny_job(client_grait: Grait, root: Path, tmp_path: Path) -> tuple[dict, str]:
    """Upload the tiny world's choice sets, write the job body as YAML, create the job."""
    data = root / "tiny-seed0" / "data" / "choice"
    body = dict(TINY_JOB, training_dataset=upload(client_grait, data / "train.jsonl"))
    body["eval_datasets"] = {
        name: upload(client_grait, data / f"{split}.jsonl")
        for name, split in (("id", "test_id"), ("ood", "test_ood"))
    }
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(body))
    created = client_grait("jobs", "create", "--config", config, "--idempotency-key", "k-1")
    assert created.rc == 0, created.err
    return body, json.loads(created.out.split("\n", 1)[1])["id"]


@pytest.mark.timeout(400)
def test_job_lifecycle(
    client_grait: Grait, service: Service, tiny_toyworld: Path, tmp_path: Path
) -> None:
    body, job_id = create_tiny_job(client_grait, tiny_toyworld, tmp_path)
    # The same key and body (as JSON this time) is an idempotent replay: the same job.
    again = tmp_path / "job.json"
    again.write_text(json.dumps(body))
    replay = client_grait("jobs", "create", "--config", again, "--idempotency-key", "k-1")
    assert replay.rc == 0 and replay.out.startswith(f"job {job_id} ")

    followed = client_grait("jobs", "events", job_id, "--follow")
    assert followed.rc == 0, followed.err
    assert followed.out.strip() == f"job {job_id} succeeded"
    for stage in ("probe", "features", "train", "evaluate"):
        assert re.search(rf"{stage}: 100%.*\d+/\d+", followed.err), (stage, followed.err)

    listed = client_grait("jobs", "list", "--status", "succeeded")
    assert listed.rc == 0 and job_id in listed.out
    shown = client_grait("jobs", "show", job_id)
    assert json.loads(shown.out)["status"] == "succeeded"
    events = client_grait("jobs", "events", job_id)
    assert events.rc == 0 and "stage_finished" in events.out and "succeeded" in events.out

    report = client_grait("jobs", "report", job_id)
    assert report.rc == 0
    for test_set in ("id", "ood"):
        for label in ("base model (basic prompt)", "base model (refuse prompt)", "grait tuned"):
            assert re.search(rf"^{test_set}\s+{re.escape(label)}\s+\d+\.\d", report.out, re.M)
    assert re.search(r"Pc\s+Pw\s+Pr\s+THS", report.out)

    artifacts = client_grait("jobs", "artifacts", job_id)
    assert artifacts.rc == 0 and re.search(r"^report\.json\s+\d+$", artifacts.out, re.M)
    out = tmp_path / "downloaded.json"
    downloaded = client_grait("jobs", "download", job_id, "report.json", "-o", out)
    assert downloaded.rc == 0, downloaded.err
    on_disk = service.artifacts / "jobs" / job_id / "report.json"
    assert json.loads(out.read_text()) == json.loads(on_disk.read_text())
    missing = client_grait("jobs", "download", job_id, "nope.json", "-o", tmp_path / "x")
    assert missing.rc == 1 and "Not found" in missing.err and not (tmp_path / "x").exists()

    retried = client_grait("jobs", "retry", job_id)
    assert retried.rc == 0 and f"(retry of {job_id})" in retried.out
    new_id = retried.out.split()[1]
    cancelled = client_grait("jobs", "cancel", new_id)
    assert cancelled.rc == 0 and re.match(rf"job {new_id} (cancelled|cancelling)", cancelled.out)
    ended = client_grait("jobs", "events", new_id, "--follow")
    assert ended.rc == 1 and ended.out.strip() == f"job {new_id} cancelled"
    still_queued = client_grait("jobs", "list", "--status", "queued")
    assert new_id not in still_queued.out
