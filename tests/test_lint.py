"""Lint, format and type checks are part of the test run (ruff and mypy, configured in
pyproject.toml)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: `pip install -e .[test]` installs it")
    return [exe]


def test_ruff_check():
    result = subprocess.run([*ruff(), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = subprocess.run(
        [*ruff(), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    """mypy, strict on grait_engine, app, worker and grait_cli (pyproject's [tool.mypy]); its cache
    (.mypy_cache) makes reruns fast, a fresh clone pays one cold run."""
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: `pip install -e .[test]` installs it")
    command = [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
