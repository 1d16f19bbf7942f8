"""``grait ask`` (a service job id, and a ``grait run`` folder) and ``grait jobs export``
against the real service on the tiny world: the answers are the job's own evaluation
outputs for the same question, and the export downloads a merged safetensors model."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.conftest import Result, Service
from tests.cli.test_client_commands import create_tiny_job
from tests.tiny_jobs import GRAIT_16, tiny_job

Grait = Callable[..., Result]
LABELS = ("base model (basic prompt)", "base model (refuse prompt)", "tuned model (refuse prompt)")
RUNS = ("init_basic", "init_refuse", "tuned")


def _first_item(root: Path) -> dict[str, Any]:
    path = root / "tiny-seed0" / "data" / "choice" / "test_id.jsonl"
    return json.loads(path.read_text().splitlines()[0])


def _first_outputs(eval_dir: Path) -> list[str]:
    """The first test_id prediction of init_basic, init_refuse and tuned."""
    return [
        json.loads((eval_dir / "id" / run / "predictions.jsonl").read_text().splitlines()[0])[
            "output"
        ]
        for run in RUNS
    ]


def _check_printed(result: Result, item: dict[str, Any], outputs: list[str]) -> None:
    """The question, its options, and one ``label: 'answer'  refusal: yes/no`` per model."""
    assert result.rc == 0, result.err
    assert f"question: {item['question']}" in result.out
    for letter, text in item["choices"].items():
        assert f"  {letter}. {text}" in result.out
    for label, output in zip(LABELS, outputs, strict=True):
        refusal = "yes" if "i don't know" in output.lower() else "no"
        line = rf"^{re.escape(label)}:\s+{re.escape(repr(output))}  refusal: {refusal}$"
        assert re.search(line, result.out, re.M), (label, result.out)


@pytest.mark.timeout(600)
def test_ask_and_export_a_service_job(
    client_grait: Grait, service: Service, tiny_toyworld: Path, tmp_path: Path
) -> None:
    _, job_id = create_tiny_job(client_grait, tiny_toyworld, tmp_path)
    followed = client_grait("jobs", "events", job_id, "--follow")
    assert followed.rc == 0, followed.err
    item = _first_item(tiny_toyworld)
    choices = list(item["choices"].values())
    outputs = _first_outputs(service.artifacts / "jobs" / job_id / "eval")

    asked = client_grait("ask", job_id, item["question"], "--choices", *choices)
    _check_printed(asked, item, outputs)
    assert re.search(r"generate job job_\w+ queued", asked.err)
    as_json = client_grait("ask", job_id, item["question"], "--choices", *choices, "--json")
    assert as_json.rc == 0, as_json.err
    answer = json.loads(as_json.out)["answers"][0]
    assert [answer[key]["answer"] for key in ("base", "base_refuse", "tuned")] == outputs

    no_choices = client_grait("ask", job_id, item["question"])
    assert no_choices.rc == 1 and "questions.0.choices" in no_choices.err

    out = tmp_path / "merged"
    exported = client_grait("jobs", "export", job_id, "--download", out)
    assert exported.rc == 0, exported.err
    assert re.search(r"export job job_\w+ succeeded", exported.out)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    queued = client_grait("jobs", "export", job_id)
    assert queued.rc == 0 and re.match(r"export job job_\w+ queued", queued.out)


@pytest.mark.timeout(600)
def test_ask_a_local_run_folder(grait: Grait, tiny_world: Any, tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump(tiny_job(tiny_world, GRAIT_16)))
    folder = tmp_path / "run"
    ran = grait("run", "--config", config, "--out", folder)
    assert ran.rc == 0, ran.err
    item = _first_item(tiny_world.root.parent)
    asked = grait("ask", folder, item["question"], "--choices", *item["choices"].values())
    _check_printed(asked, item, _first_outputs(folder / "eval"))

    no_choices = grait("ask", folder, item["question"])
    assert no_choices.rc == 2 and "questions.0.choices" in no_choices.err
    missing = grait("ask", tmp_path / "nope", "Where?")
    assert missing.rc == 2 and "no job folder" in missing.err
    unfinished = tmp_path / "empty"
    unfinished.mkdir()
    assert grait("ask", unfinished, "Where?").rc == 2
