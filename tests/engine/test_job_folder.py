"""grait_engine.job_folder: checkpoint naming and the readers of a job folder."""

from __future__ import annotations

import json
from pathlib import Path

from grait_engine.job_folder import (
    CHECKPOINT_NAME,
    REPORT_FILE,
    STAGES_FILE,
    checkpoint_name,
    read_report,
    read_stages,
)


def test_checkpoint_name_round_trips_through_the_pattern() -> None:
    for step in (0, 50, 123456, 1234567):
        match = CHECKPOINT_NAME.match(checkpoint_name(step))
        assert match is not None and int(match.group(1)) == step
    assert checkpoint_name(50) == "step-000050"
    assert CHECKPOINT_NAME.match("step-50") is None


def test_readers_give_none_or_empty_for_missing_or_broken_files(tmp_path: Path) -> None:
    assert read_report(tmp_path) is None
    assert read_stages(tmp_path) == {}
    (tmp_path / REPORT_FILE).write_text("{torn", encoding="utf-8")
    (tmp_path / STAGES_FILE).write_text("[1, 2]", encoding="utf-8")
    assert read_report(tmp_path) is None
    assert read_stages(tmp_path) == {}


def test_readers_return_the_documents(tmp_path: Path) -> None:
    (tmp_path / REPORT_FILE).write_text(json.dumps({"job": {"id": "j1"}}), encoding="utf-8")
    (tmp_path / STAGES_FILE).write_text(json.dumps({"train": "/cache/train/ab"}))
    assert read_report(tmp_path) == {"job": {"id": "j1"}}
    assert read_stages(tmp_path) == {"train": "/cache/train/ab"}
