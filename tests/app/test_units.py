"""Small pieces: file names, ids, UTC datetimes, settings, the metrics text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.datasets.upload import clean_filename
from app.db.types import UTCDateTime, new_id
from app.jobs.spec import JobCreate
from app.metrics import HttpMetrics
from app.settings import Settings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x.jsonl", "x.jsonl"),
        ("..\\..\\evil.jsonl", "evil.jsonl"),
        ("/etc/passwd", "passwd"),
        ("..", None),
        ("", None),
        ("a\x00b\nc.jsonl", "abc.jsonl"),
    ],
)
def test_clean_filename(name: str, expected: str | None) -> None:
    assert clean_filename(name) == expected


def test_ids_sort_by_creation() -> None:
    first = new_id("ds")
    later = [new_id("ds") for _ in range(3)]
    assert all(len(item) == len("ds_") + 24 for item in later)
    assert all(first[:15] <= item[:15] for item in later)


def test_utc_datetime_rejects_naive_and_normalises() -> None:
    column = UTCDateTime()

    class Dialect:
        name = "postgresql"

    with pytest.raises(ValueError):
        column.process_bind_param(datetime(2025, 1, 1), Dialect())  # type: ignore[arg-type]
    plus_two = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    bound = column.process_bind_param(plus_two, Dialect())  # type: ignore[arg-type]
    assert bound == datetime(2025, 1, 1, 10, tzinfo=UTC) and bound.tzinfo == UTC


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAIT_MODEL_ALLOWLIST", "org/a, org/b,toyworld/tiny")
    monkeypatch.setenv("GRAIT_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.delenv("GRAIT_DATABASE_URL", raising=False)
    monkeypatch.delenv("GRAIT_ARTIFACT_DIR", raising=False)
    monkeypatch.setenv("GRAIT_BROKER_URL", "redis://:secret@host:6379/1")
    settings = Settings(data_dir="/srv/grait")
    assert settings.models == ["toyworld/small", "toyworld/tiny", "org/a", "org/b"]
    assert settings.max_upload_bytes == 1234
    assert settings.database_url == "sqlite:////srv/grait/grait.db"
    assert "secret" not in repr(settings)
    assert settings.queue == "local" and settings.should_migrate_at_startup


def test_request_digest_of_a_job_without_runtime_is_as_before_runtime_existed() -> None:
    """Jobs stored before ``runtime`` existed keep replaying under their Idempotency-Key."""
    body = {
        "model": "toyworld/tiny",
        "task": "choice",
        "training_dataset": "ds_a",
        "eval_datasets": {"id": "ds_b"},
        "method": {"type": "cor_rait", "n_ik": 16, "n_idk": 16},
        "hyperparameters": {"epochs": 1},
    }
    before = "b00250675ab2cd8f0aa3014bbd338e6616b4d6f4bc34cec226c5a2e140a47d2e"  # at 8b5f893
    assert JobCreate(**body).request_sha256() == before
    assert JobCreate(**body, runtime={}).request_sha256() == before
    assert JobCreate(**body, runtime={"batch_size": 4}).request_sha256() != before


def test_metrics_text_escapes_labels() -> None:
    metrics = HttpMetrics()
    metrics.observe("GET", 'a"b', 200, 0.02)
    text = metrics.render()
    assert 'route="a\\"b"' in text
    assert 'le="0.025"} 1' in text and 'le="0.01"} 0' in text
