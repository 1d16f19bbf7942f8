"""Fixtures shared by the engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.helpers import save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with its tokenizer, saved once per test session. Do not modify."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory):
    """The ``tiny`` toy world (seed 0), built once per test session. Do not modify."""
    from grait_engine.toyworld import build_toyworld, preset

    return build_toyworld(preset("tiny", seed=0), tmp_path_factory.mktemp("toyworld") / "tiny")
