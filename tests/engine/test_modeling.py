"""Model loading: local and cached models, offline always, safetensors only, no remote code.
Every test runs with the network blocked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hf_constants
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

from grait_engine import model_files, modeling
from grait_engine.model_files import ModelLoadError, ModelNotFoundError, UnsafeWeightsError
from grait_engine.modeling import ModelSpec
from tests.engine.helpers import save_tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Fail any socket connection, and check afterwards that none was even attempted."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield attempts
    assert attempts == [], f"network access attempted: {attempts}"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache in tmp, set as HF_HUB_CACHE, with HF_HUB_OFFLINE unset."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    return cache


def make_cached_snapshot(cache: Path, repo_id: str, source: Path, commit: str) -> Path:
    """Lay ``source`` out as huggingface_hub does: blobs, symlinked snapshot, refs/main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def logits(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


# Specs and devices


def test_spec_rejects_unknown_device_and_dtype():
    with pytest.raises(ValueError, match="device"):
        ModelSpec("x", device="tpu")
    with pytest.raises(ValueError, match="dtype"):
        ModelSpec("x", dtype="int8")
    assert ModelSpec("x", device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallbacks")
def test_auto_device_and_dtype_fall_back_to_cpu_float32():
    assert modeling.resolve_device("auto") == torch.device("cpu")
    assert modeling.resolve_dtype("auto", torch.device("cpu")) is torch.float32
    with pytest.raises(ModelLoadError, match="cuda"):
        modeling.resolve_device("cuda")


# Loading from a local directory


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_load_model_from_local_directory(tiny_model_dir: Path, dtype: torch.dtype):
    spec = ModelSpec(str(tiny_model_dir), device="auto", dtype=str(dtype).removeprefix("torch."))
    model, tokenizer = modeling.load_model(spec)

    assert isinstance(model, LlamaForCausalLM)
    assert model.dtype == dtype
    assert not model.training
    if not torch.cuda.is_available():
        assert model.device.type == "cpu"
    assert model.grait_revision == model_files.model_revision(tiny_model_dir)
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<pad>"
    batch = tokenizer(["Question: hi", "Answer:"], return_tensors="pt", padding=True)
    assert batch.input_ids[1, 0] == tokenizer.pad_token_id  # the shorter row is padded first
    out = logits(model, tokenizer, ["Question: hi", "Answer:"])
    assert out.shape[:2] == batch.input_ids.shape and torch.isfinite(out).all()


def test_tokenizer_without_pad_token_pads_with_eos(tmp_path: Path):
    directory = save_tiny_model(tmp_path / "m", with_pad_token=False)
    tokenizer = modeling.load_tokenizer(ModelSpec(str(directory)))
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert tokenizer.padding_side == "left"


# Not found, offline


def test_missing_local_directory_raises_model_not_found(tmp_path: Path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(ModelNotFoundError, match="no-such-model") as info:
        modeling.load_model(ModelSpec(missing))
    assert isinstance(info.value, ModelLoadError) and isinstance(info.value, FileNotFoundError)
    assert "config.json" in str(info.value)


def test_unknown_hub_id_raises_without_network(hub_cache: Path, no_network: list[object]):
    with pytest.raises(ModelNotFoundError) as info:
        modeling.load_model(ModelSpec("some-org/not-downloaded"))
    message = str(info.value)
    assert "'some-org/not-downloaded'" in message
    assert str(hub_cache / "models--some-org--not-downloaded") in message
    assert "hf download some-org/not-downloaded" in message and "local directory" in message
    with pytest.raises(ModelNotFoundError, match="not-downloaded"):
        modeling.load_tokenizer(ModelSpec("some-org/not-downloaded"))
    assert no_network == []


def test_invalid_hub_id_raises_model_not_found(hub_cache: Path):
    with pytest.raises(ModelNotFoundError, match="bad--name"):
        model_files.resolve_model_path("bad--name")


def test_directory_without_config_is_not_a_model(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="config.json"):
        model_files.resolve_model_path(str(tmp_path))


# Hugging Face cache layout


def test_hub_id_resolves_from_cache_with_commit_revision(hub_cache: Path, tiny_model_dir: Path):
    snapshot = make_cached_snapshot(hub_cache, "org/tiny", tiny_model_dir, COMMIT)

    assert model_files.resolve_model_path("org/tiny") == snapshot
    assert model_files.resolve_model_path("org/tiny", revision=COMMIT) == snapshot
    assert model_files.model_revision(snapshot) == COMMIT
    model, _ = modeling.load_model(ModelSpec("org/tiny"))
    assert isinstance(model, LlamaForCausalLM)
    assert model.grait_revision == COMMIT
    with pytest.raises(ModelNotFoundError, match="no-such-branch"):
        model_files.resolve_model_path("org/tiny", revision="no-such-branch")


# Safety: safetensors only, no remote code


def test_pickle_only_directory_is_refused(tmp_path: Path, tiny_model_dir: Path):
    directory = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, directory)
    state = load_file(directory / "model.safetensors")
    (directory / "model.safetensors").unlink()
    torch.save(state, directory / "pytorch_model.bin")

    with pytest.raises(UnsafeWeightsError) as info:
        modeling.load_model(ModelSpec(str(directory)))
    assert str(directory) in str(info.value) and "pytorch_model.bin" in str(info.value)
    assert "safetensors" in str(info.value)


def write_remote_code_model(source: Path, directory: Path, model_type: str) -> Path:
    """A model directory whose config points at custom code that leaves a marker if run."""
    shutil.copytree(source, directory)
    marker = directory.parent / f"{directory.name}-code-ran"
    (directory / "custom_model.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
    )
    config = json.loads((directory / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {
        "AutoConfig": "custom_model.CustomConfig",
        "AutoModelForCausalLM": "custom_model.CustomModel",
    }
    (directory / "config.json").write_text(json.dumps(config))
    return marker


def test_remote_code_of_a_known_architecture_is_not_run(tmp_path: Path, tiny_model_dir: Path):
    marker = write_remote_code_model(tiny_model_dir, tmp_path / "custom", "llama")
    model, _ = modeling.load_model(ModelSpec(str(tmp_path / "custom")))
    assert type(model) is LlamaForCausalLM
    assert not marker.exists()


def test_remote_code_of_an_unknown_architecture_fails_clearly(tmp_path: Path, tiny_model_dir: Path):
    marker = write_remote_code_model(tiny_model_dir, tmp_path / "custom", "my_custom_lm")
    with pytest.raises(ModelLoadError, match="custom code") as info:
        modeling.load_model(ModelSpec(str(tmp_path / "custom")))
    assert "never runs code shipped with a model" in str(info.value)
    assert not marker.exists()


# Revision


def test_model_revision_is_stable_and_follows_the_files(tmp_path: Path, tiny_model_dir: Path):
    directory = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, directory)
    first = model_files.model_revision(directory)
    assert first.startswith("local-") and first == model_files.model_revision(directory)

    weights = directory / "model.safetensors"
    before = weights.stat()
    state = load_file(weights)
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    save_file(state, weights, metadata={"format": "pt"})
    # A real rewrite happens later in time; make that explicit for coarse-mtime filesystems.
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    second = model_files.model_revision(directory)
    assert second != first

    config = json.loads((directory / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (directory / "config.json").write_text(json.dumps(config))
    assert model_files.model_revision(directory) not in {first, second}


def test_4bit_quantization_needs_cuda_and_says_so(tiny_model_dir: Path):
    from grait_engine.model_files import ModelLoadError

    with pytest.raises(ValueError, match="quantization must be null or 4bit"):
        ModelSpec(str(tiny_model_dir), quantization="8bit")
    with pytest.raises(ModelLoadError, match="'4bit' needs a CUDA device, not cpu"):
        modeling.load_model(ModelSpec(str(tiny_model_dir), quantization="4bit"))


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="4-bit QLoRA needs a CUDA device and bitsandbytes (the gpu extra); not run on CPUs",
)
def test_4bit_model_loads_and_trains_a_lora(tiny_model_dir: Path):
    pytest.importorskip("bitsandbytes", reason="the gpu extra (bitsandbytes) is not installed")
    from grait_engine.lora import attach_lora, lora_parameters

    model, _ = modeling.load_model(
        ModelSpec(str(tiny_model_dir), device="cuda", quantization="4bit")
    )
    peft_model = attach_lora(model, 4, 8.0, 0.0, seed=0)
    ids = torch.tensor([[1, 40, 41, 42]], device="cuda")
    peft_model(input_ids=ids).logits.float().sum().backward()
    assert all(p.grad is not None for _, p in lora_parameters(peft_model) if "lora_A" in _)
