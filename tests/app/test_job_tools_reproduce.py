"""Generate and export jobs of a tuned job end to end, on SQLite and PostgreSQL: a tiny-world
tune job, then a generate job (its answers are the tune job's own evaluation outputs) and an
export job through the local runner; the adapter and the merged model are downloaded through
the artifacts API and decode the test sets in a fresh process using transformers and peft
only (``reproduce_predictions.py``, the README's recipe): both give the job's tuned
predictions exactly. The request checks: test_job_tools.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.app.helpers import new_key
from tests.app.job_helpers import (
    finished,
    job_body,
    job_settings,
    retire_leftover_jobs,
    upload_world,
    wait_for,
)

REPRODUCE = Path(__file__).with_name("reproduce_predictions.py")
WORKER_RUNTIME = {"batch_size": 4, "memory_budget_mb": 128}
# Enough training that the adapter changes answers (some become refusals).
STRONG = {"lora_r": 4, "epochs": 3, "batch_size": 8, "lr": 0.002}


@pytest.fixture
def job_app(tmp_path: Path, database_url: str, toyworld_dir: Path) -> Iterator[FastAPI]:
    """The service with its local runner (job children with one torch thread)."""
    retire_leftover_jobs(database_url)
    settings = job_settings(tmp_path / "data", database_url, toyworld_dir, **WORKER_RUNTIME)
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


def _items(toyworld_dir: Path, split: str) -> list[dict[str, Any]]:
    path = toyworld_dir / "tiny-seed0" / "data" / "choice" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _question(item: dict[str, Any]) -> dict[str, Any]:
    return {"question": item["question"], "choices": list(item["choices"].values())}


def _download(client: TestClient, auth: dict[str, str], job_id: str, name: str, out: Path) -> Path:
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=auth)
    assert response.status_code == 200, (name, response.text[:200])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(response.content)
    return out


def _predictions(client: TestClient, auth: dict[str, str], job_id: str, path: str) -> list[dict]:
    response = client.get(f"/v1/jobs/{job_id}/artifacts/{path}", headers=auth)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def _reproduce(base: Path, adapter: Path | str, items: list[dict], tmp: Path) -> dict:
    """Run reproduce_predictions.py in a fresh interpreter (one torch thread)."""
    items_path, out = tmp / "items.jsonl", tmp / "decoded.json"
    items_path.write_text("".join(json.dumps(item) + "\n" for item in items))
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    command = [sys.executable, str(REPRODUCE), str(base), str(adapter), str(items_path), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.timeout(900)
def test_generate_and_export_reproduce_the_tuned_model(
    job_app: FastAPI, toyworld_dir: Path, tmp_path: Path
) -> None:
    """A tuned job's generate job answers as its evaluation did; its adapter (downloaded,
    transformers + peft in a fresh process) and its merged export (transformers alone)
    reproduce the tuned predictions of both test sets exactly."""
    key, _ = new_key(job_app)
    client, auth = TestClient(job_app), {"Authorization": f"Bearer {key}"}
    base = toyworld_dir / "tiny-seed0" / "model"
    with client:
        ids = upload_world(client, auth, toyworld_dir)
        body = job_body(ids, hyperparameters=STRONG)
        tune = client.post("/v1/jobs", json=body, headers=auth).json()
        tune = wait_for(client, auth, tune["id"], finished, timeout=600)
        assert tune["status"] == "succeeded", tune["error"]
        runs = ("init_basic", "init_refuse", "tuned")
        predictions = {
            (test_set, run): _predictions(
                client, auth, tune["id"], f"eval/{test_set}/{run}/predictions.jsonl"
            )
            for test_set in ("id", "ood")
            for run in runs
        }
        tuned_changed = [
            a["output"] != b["output"]
            for test_set in ("id", "ood")
            for a, b in zip(
                predictions[test_set, "init_refuse"], predictions[test_set, "tuned"], strict=True
            )
        ]
        assert any(tuned_changed), "the adapter changed no answer: the test would prove nothing"

        # generate: the evaluation's answers for the same questions (all three models).
        items = _items(toyworld_dir, "test_id")[:6]
        url = f"/v1/jobs/{tune['id']}/generations"
        made = client.post(url, json={"questions": [_question(i) for i in items]}, headers=auth)
        assert made.status_code == 201, made.text
        gen = wait_for(client, auth, made.json()["id"], finished, timeout=600)
        assert gen["status"] == "succeeded", gen["error"]
        answers = gen["result"]["answers"]
        assert gen["result"]["prompts"] == {
            "base": "basic",
            "base_refuse": "refuse",
            "tuned": "refuse",
        }
        for key, run in (
            ("base", "init_basic"),
            ("base_refuse", "init_refuse"),
            ("tuned", "tuned"),
        ):
            expected = predictions["id", run][: len(items)]
            assert [a[key]["answer"] for a in answers] == [p["output"] for p in expected], key
            assert [a[key]["refusal"] for a in answers] == [
                p["label"] == "refused" for p in expected
            ], key
        assert [a["question"] for a in answers] == [i["question"] for i in items]
        assert answers[0]["choices"] == items[0]["choices"]
        names = {
            a["name"]
            for a in client.get(f"/v1/jobs/{gen['id']}/artifacts", headers=auth).json()["data"]
        }
        assert {"answers.json", "report.json"} <= names
        report = client.get(f"/v1/jobs/{gen['id']}/report", headers=auth).json()
        assert report == gen["result"]

        # The adapter, downloaded through the API, in a fresh process (transformers + peft).
        adapter = tmp_path / "adapter"
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            _download(client, auth, tune["id"], f"adapter/{name}", adapter / name)
        decoded = {}
        for test_set, split in (("id", "test_id"), ("ood", "test_ood")):
            work = tmp_path / f"peft-{test_set}"
            work.mkdir()
            decoded[test_set] = _reproduce(base, adapter, _items(toyworld_dir, split), work)
            expected = [p["output"] for p in predictions[test_set, "tuned"]]
            assert decoded[test_set]["outputs"] == expected, test_set

        # export: merged/ in the export job's artifacts, loaded with transformers alone.
        made = client.post(f"/v1/jobs/{tune['id']}/exports", json={"merge": True}, headers=auth)
        assert made.status_code == 201, made.text
        export = wait_for(client, auth, made.json()["id"], finished, timeout=600)
        assert export["status"] == "succeeded", export["error"]
        listed = client.get(f"/v1/jobs/{export['id']}/artifacts", headers=auth).json()["data"]
        merged_files = {
            a["name"]: a["size_bytes"] for a in listed if a["name"].startswith("merged/")
        }
        assert {"merged/config.json", "merged/model.safetensors", "merged/tokenizer.json"} <= set(
            merged_files
        )
        assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in merged_files)
        assert export["result"]["merged"]["dtype"] == "float32"
        merged = tmp_path / "merged"
        for name, size in merged_files.items():
            path = _download(client, auth, export["id"], name, merged / name.split("/", 1)[1])
            assert path.stat().st_size == size
        for test_set, split in (("id", "test_id"), ("ood", "test_ood")):
            work = tmp_path / f"merged-{test_set}"
            work.mkdir()
            alone = _reproduce(merged, "-", _items(toyworld_dir, split), work)
            expected = [p["output"] for p in predictions[test_set, "tuned"]]
            assert alone["outputs"] == expected, test_set
            # Merging changes the weights by float rounding only.
            gap = max(
                abs(x - y)
                for row_a, row_b in zip(alone["logits"], decoded[test_set]["logits"], strict=True)
                for x, y in zip(row_a, row_b, strict=True)
            )
            assert gap < 1e-4, gap
