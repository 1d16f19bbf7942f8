"""Fixtures shared by the engine tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.engine.helpers import save_tiny_model

# Engine tests run single-threaded: float reductions then round the same way in the test
# process, whatever ran before, and in the subprocesses that tests kill and resume (they
# inherit the variable). Results compared byte for byte depend on it.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with its tokenizer, saved once per test session. Do not modify."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_llama"))
