"""``grait demo --size tiny`` end to end (service in-process, two jobs over HTTP), then a
rerun that reuses the datasets and the finished jobs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from grait_cli.demo import idempotency_key, job_body
from tests.cli.conftest import Result

MODELS = (
    "base model (basic prompt)",
    "base model (refuse prompt)",
    "cor_rait tuned",
    "grait tuned",
)


def job_ids(out: str) -> dict[str, str]:
    return dict(
        re.findall(r"^\s+(cor_rait|grait): http://127\.0\.0\.1:\d+/ui/jobs/(job_\w+)$", out, re.M)
    )


@pytest.mark.timeout(600)
def test_demo_tiny_end_to_end_then_rerun_reuses_jobs(
    grait: Callable[..., Result], tiny_toyworld: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    (cache / "toyworld").mkdir(parents=True)
    (cache / "toyworld" / "tiny-seed0").symlink_to(tiny_toyworld / "tiny-seed0")

    first = grait("demo", "--size", "tiny", "--cache-dir", cache)
    assert first.rc == 0, first.out + first.err
    assert "reused from cache" in first.out and "uploaded train.jsonl" in first.out
    for test_set in ("id", "ood"):
        for model in MODELS:
            pattern = rf"^{test_set}\s+{re.escape(model)}\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d"
            assert re.search(pattern, first.out, re.M), (test_set, model, first.out)
    ids = job_ids(first.out)
    assert set(ids) == {"cor_rait", "grait"} and ids["cor_rait"] != ids["grait"]
    folders = cache / "demo-service" / "artifacts" / "jobs"
    for job_id in ids.values():
        assert (folders / job_id / "report.json").is_file()
        assert str(folders / job_id) in first.out
    assert re.search(r"grait train: 100%", first.err), first.err

    second = grait("demo", "--size", "tiny", "--cache-dir", cache)
    assert second.rc == 0, second.out + second.err
    assert "reusing train.jsonl" in second.out and "uploaded" not in second.out
    assert second.out.count("succeeded (reused)") == 2
    assert job_ids(second.out) == ids


def test_idempotency_key_follows_datasets_and_config() -> None:
    datasets = {"train": "ds_a", "id": "ds_b", "ood": "ds_c"}
    key = idempotency_key(job_body("small", 0, datasets, "grait"))
    assert key == idempotency_key(job_body("small", 0, dict(datasets), "grait"))
    assert key != idempotency_key(job_body("small", 0, datasets, "cor_rait"))
    assert key != idempotency_key(job_body("small", 1, datasets, "grait"))
    assert key != idempotency_key(job_body("small", 0, dict(datasets, train="ds_x"), "grait"))
    assert idempotency_key(job_body("small", 0, datasets, "grait"), 1).endswith("-r1")
