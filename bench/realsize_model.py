"""The inputs and the model of ``bench/realsize.py``: the benchmark files (MMLU, ARC-Challenge,
NQ) through the engine's importers, a byte-level BPE tokenizer trained on their text, and a
Llama-3-8B-shaped model with seeded random weights, built on the meta device and filled in
place (with the checks that its rotary buffers and logits are sound).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grait_engine.features.sequences import collate, encode_pair
from grait_engine.memory import available_bytes
from grait_engine.prompts import REFUSAL, STYLES, instruction, solved_example
from grait_engine.records.importers import import_dataset
from grait_engine.records.item import Item

# Llama-3-8B (meta-llama/Meta-Llama-3-8B config.json), less the layer count.
SHAPE = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
ROPE_THETA = 500000.0
FULL_LAYERS = 32
TOKENIZER_VOCAB = 32000
GiB = 2**30


@dataclass(frozen=True)
class Data:
    mmlu_test: list[Item]
    mmlu_dev: list[Item]
    mmlu_val: list[Item]
    arc_c: list[Item]
    nq: list[Item]


def load_data(root: Path) -> Data:
    """The benchmark files through the engine's importers (see ../shared/datasets/README.md)."""
    paths = {
        "mmlu_test": (root / "mmlu" / "test", "mmlu"),
        "mmlu_dev": (root / "mmlu" / "dev", "mmlu"),
        "mmlu_val": (root / "mmlu" / "val", "mmlu"),
        "arc_c": (root / "ARC" / "ARC-c" / "ARC-Challenge-Test.jsonl", "arc"),
        "nq": (root / "nq" / "en" / "dev.json", "nq"),
    }
    missing = [str(path) for path, _ in paths.values() if not path.exists()]
    if missing:
        sys.exit(f"benchmark files not found (set --datasets): {', '.join(missing)}")
    return Data(**{name: import_dataset(path, fmt) for name, (path, fmt) in paths.items()})


def corpus(data: Data) -> list[str]:
    """Text to train the tokenizer on: every item as a solved example, plus the prompts'
    fixed lines (instructions for every subject and style, the refusal)."""
    items = [*data.mmlu_test, *data.mmlu_dev, *data.mmlu_val, *data.arc_c, *data.nq]
    texts = [solved_example(item) for item in items]
    subjects = sorted({item.subject for item in items if item.subject}) + [None]
    for style in STYLES:
        texts += [instruction("choice", style, subject) for subject in subjects]
        texts.append(instruction("open", style))
    return [*texts, REFUSAL]


def build_tokenizer(texts: Sequence[str]) -> Any:
    """A byte-level BPE (``TOKENIZER_VOCAB`` tokens) with ``<s> </s> <pad>``; BOS prepended
    (as ``tests/engine/helpers.build_tiny_tokenizer``), padding on the left."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = SHAPE["max_position_embeddings"]
    return tokenizer


def build_model(
    args: argparse.Namespace, tokenizer: Any, device: torch.device, dtype: torch.dtype
) -> Any:
    """Llama-3-8B's shape with ``args.layers`` layers and seeded random weights.

    Built on the meta device, moved to ``device`` uninitialised (``to_empty``), then filled:
    normal(0, 0.02) matrices and embeddings, ones for the RMSNorm weights. The rotary
    embedding's ``inv_freq`` is a non-persistent buffer computed in ``__init__`` (garbage
    after ``to_empty``), so every rotary module is built again on the CPU and moved over."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **SHAPE,
        num_hidden_layers=args.layers,
        rope_theta=ROPE_THETA,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    rope = getattr(config, "rope_parameters", None)  # transformers 5 keeps theta here
    if isinstance(rope, dict) and "rope_theta" in rope:
        rope["rope_theta"] = ROPE_THETA
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    model.to(dtype)  # meta: free; the real memory comes with to_empty
    needed = sum(p.numel() for p in model.parameters()) * dtype.itemsize
    if needed > available_bytes(device):
        sys.exit(
            f"{args.layers} layer(s) in {dtype} need {needed / GiB:.1f} GiB for the weights, more "
            f"than the {available_bytes(device) / GiB:.1f} GiB free on {device}: use fewer --layers"
        )
    model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        for _, param in model.named_parameters():
            if param.ndim == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02, generator=generator)
    names = dict(model.named_modules())
    rotary = [n for n, m in names.items() if type(m).__name__.endswith("RotaryEmbedding")]
    if not rotary:
        raise RuntimeError("no rotary embedding module found: cannot fix inv_freq")
    for name in rotary:
        parent, _, leaf = name.rpartition(".")
        fresh = type(names[name])(config=model.config)  # on the CPU, float32 inv_freq
        setattr(names[parent] if parent else model, leaf, fresh.to(device))
    fresh_buffers = {f"{n}.{b}" for n in rotary for b, _ in model.get_submodule(n).named_buffers()}
    stale = [n for n, _ in model.named_buffers() if n not in fresh_buffers]
    if stale:
        raise RuntimeError(f"buffers left uninitialised by to_empty: {stale}")
    check_rotary(model, rotary)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.grait_revision = f"realsize-random-{args.layers}"
    return model


def check_rotary(model: Any, names: Sequence[str]) -> None:
    """Every rotary ``inv_freq`` equals Llama's default ``1 / theta^(2i / head_dim)``."""
    head_dim = SHAPE["hidden_size"] // SHAPE["num_attention_heads"]
    expected = 1.0 / (ROPE_THETA ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    for name in names:
        got = model.get_submodule(name).inv_freq.detach().float().cpu()
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-6):
            raise RuntimeError(f"{name}.inv_freq is wrong after building the model")


def check_finite(model: Any, tokenizer: Any, items: Sequence[Item], device: torch.device) -> None:
    """The model's full logits on two real sequences are finite."""
    sequences = [encode_pair(item, tokenizer)[0] for item in items[:2]]
    batch = collate(sequences, int(tokenizer.pad_token_id), device)
    with torch.no_grad():
        logits = model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
        ).logits
    if not bool(torch.isfinite(logits.float()).all()):
        raise RuntimeError("the random model gives non-finite logits")


def model_bytes(model: Any) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())
