"""LoRA on a loaded base model: default targets, attach (seeded, adapter-only training),
parameter order and count, save / load round trip, merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from grait_engine import lora
from grait_engine.model_files import ModelLoadError
from grait_engine.modeling import ModelSpec, load_model


def logits(model: torch.nn.Module, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits


def expected_lora_count(model: torch.nn.Module, targets: list[str], r: int) -> int:
    """r * (in + out) for every linear layer whose name ends with a target."""
    return sum(
        r * (module.in_features + module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in targets
    )


def test_attach_lora_trains_only_the_adapter(tiny_model_dir: Path):
    model, tokenizer = load_model(ModelSpec(str(tiny_model_dir)))
    targets = lora.default_target_modules(model)
    assert targets == ["q_proj", "k_proj", "v_proj", "o_proj"]
    expected = expected_lora_count(model, targets, r=4)
    assert expected == 2 * 4 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32))
    before = logits(model, tokenizer, ["Answer: Paris"])

    peft_model = lora.attach_lora(model, r=4, alpha=8, dropout=0.0, seed=1)

    params = lora.lora_parameters(peft_model)
    assert lora.count_lora_parameters(peft_model) == expected
    trainable = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable == [name for name, _ in params]
    assert {name.split(".")[-3] for name, _ in params} == {"lora_A", "lora_B"}
    # lora_B starts at zero: the adapter does not change the model's output yet.
    torch.testing.assert_close(logits(peft_model, tokenizer, ["Answer: Paris"]), before)


def test_attach_lora_seed_is_reproducible_and_keeps_global_rng(tiny_model_dir: Path):
    spec = ModelSpec(str(tiny_model_dir))
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = lora.lora_parameters(lora.attach_lora(load_model(spec)[0], 2, 4, 0, seed=7))
    b = lora.lora_parameters(lora.attach_lora(load_model(spec)[0], 2, 4, 0, seed=7))
    c = lora.lora_parameters(lora.attach_lora(load_model(spec)[0], 2, 4, 0, seed=8))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(torch.equal(p, q) for (_, p), (_, q) in zip(a, b, strict=True))
    assert not torch.equal(a[0][1], c[0][1])


def test_default_targets_fall_back_to_linear_layers_without_the_head():
    config = GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=32)
    model = GPT2LMHeadModel(config)
    assert lora.default_target_modules(model) == ["c_attn", "c_fc", "c_proj"]


def test_adapter_round_trip_and_merge(tmp_path: Path, tiny_model_dir: Path):
    spec = ModelSpec(str(tiny_model_dir))
    model, tokenizer = load_model(spec)
    peft_model = lora.attach_lora(model, r=4, alpha=8, dropout=0.1, seed=0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, param in lora.lora_parameters(peft_model):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    peft_model.eval()
    texts = ["Question: Who wrote Hamlet?\nAnswer:", "Answer: eight"]
    expected = logits(peft_model, tokenizer, texts)
    assert not torch.allclose(expected, logits(load_model(spec)[0], tokenizer, texts))

    directory = lora.save_adapter(peft_model, tmp_path / "adapter")
    names = sorted(p.name for p in directory.iterdir())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(names)
    assert not any(name.endswith(".bin") for name in names)
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # staging directory removed

    reloaded = lora.load_adapter(load_model(spec)[0], directory)
    assert not reloaded.training
    assert not any(p.requires_grad for p in reloaded.parameters())
    torch.testing.assert_close(logits(reloaded, tokenizer, texts), expected, rtol=0, atol=0)

    merged = lora.merge_adapter(reloaded)
    assert isinstance(merged, LlamaForCausalLM) and lora.lora_parameters(merged) == []
    torch.testing.assert_close(logits(merged, tokenizer, texts), expected, rtol=1e-5, atol=1e-5)


def test_load_adapter_needs_both_files(tmp_path: Path, tiny_model_dir: Path):
    model, _ = load_model(ModelSpec(str(tiny_model_dir)))
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="adapter_model.safetensors"):
        lora.load_adapter(model, tmp_path)
