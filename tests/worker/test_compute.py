"""``worker.compute``: torch threads, the device of ``GRAIT_DEVICE`` (``cuda:N`` makes GPU N
current), the dtype of ``GRAIT_DTYPE`` (the engine's rule) and the 4-bit check. No GPU here:
CUDA is faked where a test needs one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from app.settings import Settings
from worker import compute
from worker.compute import Compute, ComputeError, check_quantization, set_up_compute


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    """``set_up_compute`` sets this process's thread count: put it back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """torch.cuda reports two GPUs with bfloat16 support; returns the list of ``set_device``
    calls."""
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    return calls


def test_cpu_with_the_configured_threads() -> None:
    used = set_up_compute(Settings(device="cpu", torch_threads=1))
    assert used == Compute("cpu", "float32", 1) and torch.get_num_threads() == 1


def test_auto_is_the_cpu_without_a_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    used = set_up_compute(Settings(device="auto", dtype="auto", torch_threads=1))
    assert (used.device, used.dtype) == ("cpu", "float32")


def test_cuda_n_becomes_the_current_device(two_gpus: list[int]) -> None:
    used = set_up_compute(Settings(device="cuda:1", torch_threads=1))
    assert (used.device, used.dtype, used.device_type) == ("cuda:1", "bfloat16", "cuda")
    assert two_gpus == [1]


def test_auto_dtype_is_float32_on_a_gpu_without_bfloat16(
    two_gpus: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's rule (grait_engine.modeling.resolve_dtype), the one load_model uses:
    # before issue 17 the worker chose bfloat16 on any CUDA device.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    used = set_up_compute(Settings(device="cuda:0", dtype="auto", torch_threads=1))
    assert (used.device, used.dtype) == ("cuda:0", "float32")
    chosen = set_up_compute(Settings(device="cuda:0", dtype="bfloat16", torch_threads=1))
    assert chosen.dtype == "bfloat16"


def test_plain_cuda_and_auto_keep_the_current_device(two_gpus: list[int]) -> None:
    assert set_up_compute(Settings(device="cuda", torch_threads=1)).device == "cuda"
    assert set_up_compute(Settings(device="auto", torch_threads=1)).device == "cuda"
    assert two_gpus == []


@pytest.mark.parametrize(("device", "seen"), [("cuda:2", "GPUs 0-1"), ("cuda", "no GPU")])
def test_a_gpu_this_worker_lacks_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, device: str, seen: str
) -> None:
    count = 2 if seen.startswith("GPUs") else 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    with pytest.raises(ComputeError) as caught:
        set_up_compute(Settings(device=device, torch_threads=1))
    assert str(caught.value) == f"GRAIT_DEVICE: {device} requested, but this worker sees {seen}"


def test_4bit_needs_cuda_and_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    check_quantization(None, Compute("cpu", "float32", 1))
    with pytest.raises(ComputeError, match="4bit needs a CUDA device, but this worker computes"):
        check_quantization("4bit", Compute("cpu", "float32", 1))
    monkeypatch.setattr(compute.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ComputeError, match="needs the bitsandbytes package on the worker"):
        check_quantization("4bit", Compute("cuda:0", "bfloat16", 1))
