"""Pretraining of the toy world's Llama-style model on its corpus, on the CPU.

Documents are tokenised as ``<s> text </s>``, concatenated and cut into blocks of
``block_size`` tokens (packing is fine for pretraining; it is only the weighted fine-tune
that must not pack). One pass (``epochs`` passes) with AdamW and a cosine schedule with
linear warmup. Deterministic for a seed on one machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from grait_engine.toyworld.config import ToyWorldConfig

# (done, total, message) -> None
Progress = Callable[[int, int, str], None]


def model_config(config: ToyWorldConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """The Llama shape of the toy model; positions cover the longest engine prompt."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def pack_blocks(
    documents: list[str], tokenizer: PreTrainedTokenizerFast, block_size: int
) -> torch.Tensor:
    """All documents as ``<s> doc </s>`` tokens, cut into rows: LongTensor (n_blocks, block_size)."""
    encoded = tokenizer(documents, add_special_tokens=True)["input_ids"]
    stream: list[int] = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(tokenizer.eos_token_id)
    n_blocks = len(stream) // block_size
    return torch.tensor(stream[: n_blocks * block_size], dtype=torch.long).view(
        n_blocks, block_size
    )


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warmup to ``peak`` then cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def pretrain(
    config: ToyWorldConfig,
    tokenizer: PreTrainedTokenizerFast,
    documents: list[str],
    progress: Progress | None = None,
) -> tuple[LlamaForCausalLM, dict[str, float]]:
    """Train a fresh model on ``documents``; returns the model (eval mode) and statistics."""
    torch.manual_seed(config.seed)
    blocks = pack_blocks(documents, tokenizer, config.block_size)
    model = LlamaForCausalLM(model_config(config, tokenizer))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(blocks) / config.batch_size)
    total = steps_per_epoch * config.epochs
    started, step, loss_value = time.perf_counter(), 0, float("nan")
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(blocks), generator=generator)
        for start in range(0, len(blocks), config.batch_size):
            batch = blocks[order[start : start + config.batch_size]]
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, config.lr, config.warmup_steps)
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step, loss_value = step + 1, loss.item()
            if progress is not None and (step % 10 == 0 or step == total):
                progress(step, total, f"loss {loss_value:.3f}")
    model.eval()
    stats = {
        "train_tokens": float(blocks.numel() * config.epochs),
        "train_steps": float(total),
        "final_loss": loss_value,
        "train_seconds": time.perf_counter() - started,
        "n_parameters": float(sum(p.numel() for p in model.parameters())),
    }
    return model, stats
