"""Worker settings: device, torch threads and runtime defaults; checked at startup and
passed to a job's child process (``Settings.child_env``, ``supervise.thread_env``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.execution.supervise import thread_env
from app.settings import Settings, settings_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("device", "index"),
    [("auto", None), ("cpu", None), ("cuda", None), ("cuda:0", 0), ("cuda:1", 1), ("cuda:12", 12)],
)
def test_device_forms(device: str, index: int | None) -> None:
    settings = Settings(device=device)
    assert settings.device == device and settings.cuda_index == index


@pytest.mark.parametrize(
    "device", ["gpu", "cdua", "cuda:", "cuda:x", "cuda:-1", "CPU", "cpu:0", ""]
)
def test_bad_device_is_refused_naming_the_variable(device: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(device=device)
    text = settings_problems(caught.value)
    assert text.startswith("GRAIT_DEVICE: must be auto, cpu, cuda or cuda:N"), text
    assert repr(device) in text


def test_threads_default_to_the_cores_this_process_may_use() -> None:
    assert Settings().threads == len(os.sched_getaffinity(0))
    assert Settings(torch_threads=3).threads == 3
    assert thread_env(Settings(torch_threads=3)) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("torch_threads", "0", "greater than or equal to 1"),
        ("batch_size", "0", "must be an integer in [1, 1024]"),
        ("batch_size", "4096", "must be an integer in [1, 1024]"),
        ("memory_budget_mb", "-5", "must be an integer in [1, 16777216]"),
        ("batch_size", "eight", "valid integer"),
    ],
)
def test_bad_worker_defaults_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"GRAIT_{name.upper()}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = settings_problems(caught.value)
    assert text.startswith(f"GRAIT_{name.upper()}: ") and message in text, text


def test_worker_settings_reach_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """``child_env`` round-trips, and an unset value is passed as unset (empty), so the
    runner's own environment cannot leak another value into the child."""
    monkeypatch.setenv("GRAIT_BATCH_SIZE", "2")  # the runner's environment, not its settings
    given = Settings(device="cuda:1", torch_threads=2, batch_size=None, memory_budget_mb=512)
    env = given.child_env()
    assert env["GRAIT_BATCH_SIZE"] == "" and env["GRAIT_TORCH_THREADS"] == "2"
    monkeypatch.delenv("GRAIT_BATCH_SIZE")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    child = Settings()
    assert (child.device, child.torch_threads) == ("cuda:1", 2)
    assert (child.batch_size, child.memory_budget_mb) == (None, 512)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_typo_stops_serve_and_worker_at_startup(command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAIT_")}
    env |= {"GRAIT_DEVICE": "cuda1", "GRAIT_BROKER_URL": "redis://127.0.0.1:1/0"}
    done = subprocess.run(
        [sys.executable, "-m", "grait_cli.main", command],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "GRAIT_DEVICE: must be auto, cpu, cuda or cuda:N" in done.stderr
    assert "Traceback" not in done.stderr
