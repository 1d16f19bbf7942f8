"""``grait jobs evaluate`` against the real service (tiny world): a tuned job's model and a
base model alone, waited for and printed; usage and service errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.cli.conftest import TINY_JOB, Result

Grait = Callable[..., Result]


def upload(client_grait: Grait, path: Path) -> str:
    result = client_grait("datasets", "upload", path, "--task", "choice")
    assert result.rc == 0, result.err
    match = re.search(r"\b(ds_[0-9a-f]+)\b", result.out)
    assert match, result.out
    return match.group(1)


@pytest.mark.timeout(400)
def test_evaluate_a_tuned_job_and_a_base_model(
    client_grait: Grait, tiny_toyworld: Path, tmp_path: Path
) -> None:
    data = tiny_toyworld / "tiny-seed0" / "data" / "choice"
    train, test_id = (
        upload(client_grait, data / "train.jsonl"),
        upload(client_grait, data / "test_id.jsonl"),
    )
    body = dict(TINY_JOB, training_dataset=train, eval_datasets={"id": test_id})
    body["method"] = {"type": "cor_rait", "n_ik": 8, "n_idk": 8}
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(body))
    created = client_grait("jobs", "create", "--config", config)
    assert created.rc == 0, created.err
    tune_id = json.loads(created.out.split("\n", 1)[1])["id"]
    assert client_grait("jobs", "events", tune_id, "--follow").rc == 0

    tuned = client_grait("jobs", "evaluate", tune_id, "--dataset", f"again={test_id}", "--wait")
    assert tuned.rc == 0, tuned.err
    first = tuned.out.splitlines()[0]
    assert re.fullmatch(rf"evaluate job job_\w+ queued \(the tuned model of job {tune_id}\)", first)
    for label in ("base model (basic prompt)", "base model (refuse prompt)", "cor_rait tuned"):
        assert re.search(rf"^again\s+{re.escape(label)}\s+\d+\.\d", tuned.out, re.M), tuned.out
    eval_id = first.split()[2]
    shown = json.loads(client_grait("jobs", "show", eval_id).out)
    assert shown["kind"] == "evaluate" and shown["source_job_id"] == tune_id

    base = client_grait(
        "jobs",
        "evaluate",
        "--model",
        "toyworld/tiny",
        "--task",
        "choice",
        "--dataset",
        f"id={test_id}",
        "--wait",
    )
    assert base.rc == 0, base.err
    assert "(base model toyworld/tiny)" in base.out and "tuned" not in base.out
    assert re.search(r"^id\s+base model \(refuse prompt\)\s+\d+\.\d", base.out, re.M)
    knows = re.search(
        r"^id: the base model knows (\d+\.\d)% of 40 items .*histogram \[(.*)\]$", base.out, re.M
    )
    assert knows, base.out
    assert sum(int(c) for c in knows.group(2).split(",")) == 40

    # An evaluate job has no tuned model of its own: the service says 409.
    conflict = client_grait("jobs", "evaluate", eval_id, "--dataset", f"x={test_id}")
    assert conflict.rc == 1 and conflict.err.startswith("error: Conflict: ")
    wrong = client_grait("jobs", "evaluate", tune_id, "--dataset", "x=ds_nope")
    assert wrong.rc == 1 and "eval_datasets.x: no dataset" in wrong.err


@pytest.mark.parametrize(
    "argv",
    [
        ["--dataset", "a=ds_1"],  # neither a job nor a model
        ["job_1", "--model", "m", "--task", "open", "--dataset", "a=ds_1"],  # both
        ["--model", "m", "--dataset", "a=ds_1"],  # a model without its task
        ["job_1", "--dataset", "no-equals-sign"],
        ["job_1", "--dataset", "a=ds_1", "--dataset", "a=ds_2"],
    ],
)
def test_evaluate_usage_errors(client_grait: Grait, argv: list[str]) -> None:
    result = client_grait("jobs", "evaluate", *argv)
    assert result.rc == 2 and result.err.startswith("error: ")
