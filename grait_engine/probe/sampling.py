"""Reproducible sampling, independent of batching (used by the batched and naive probes).

Every sample ``k`` of item ``i`` owns a torch Generator seeded from ``(seed, i, k)`` and draws
its ``max_new_tokens`` uniforms ``u_t`` up front. At step t the next token is drawn by inverse
CDF: the first token whose cumulative probability exceeds ``u_t``. A sample therefore depends
only on its own logits and uniforms, never on which other rows share its batch, so batched and
one-at-a-time decoding give the same text (up to float noise in the logits: a token flips
only when ``u_t`` falls within that noise of a CDF boundary).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch


def sample_seed(seed: int, item_id: str, sample: int) -> int:
    """A 63-bit seed for sample ``sample`` of item ``item_id`` under the run ``seed``."""
    digest = hashlib.sha256(f"probe-sample:{seed}:{item_id}:{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def sample_uniforms(seed: int, item_id: str, n_samples: int, steps: int) -> torch.Tensor:
    """The uniforms of every sample of one item: (n_samples, steps) float64 in [0, 1)."""
    rows = []
    for k in range(n_samples):
        generator = torch.Generator().manual_seed(sample_seed(seed, item_id, k))
        rows.append(torch.rand(steps, generator=generator, dtype=torch.float64))
    return torch.stack(rows)


def pick_tokens(logits: torch.Tensor, temperature: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Draw one token per row by inverse CDF.

    ``logits``: (R, V); ``uniforms``: (R,) in [0, 1). Output: (R,) long token ids. Softmax at
    ``temperature`` in float64; ``right=True`` never lands on a zero-probability token.
    """
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    cdf = probs.cumsum(dim=-1)
    target = (uniforms.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
    tokens = torch.searchsorted(cdf, target, right=True).squeeze(1)
    return tokens.clamp(max=logits.shape[-1] - 1)


def stop_token_mask(tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]) -> torch.Tensor:
    """(V,) bool: tokens that end a sample, EOS ids and every token whose text holds a newline.

    A sample is cut at its first newline, so nothing after a newline-bearing token is used.
    """
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    known = min(len(tokenizer), vocab_size)
    texts = tokenizer.batch_decode([[v] for v in range(known)], skip_special_tokens=False)
    for v, text in enumerate(texts):
        if "\n" in text:
            mask[v] = True
    for v in eos_ids:
        if 0 <= v < vocab_size:
            mask[v] = True
    return mask


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids of the tokenizer and of the model's generation config (an int or a list)."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config = getattr(model, "generation_config", None)
    value = getattr(config, "eos_token_id", None) if config is not None else None
    for v in value if isinstance(value, list | tuple) else [value]:
        if v is not None:
            ids.add(int(v))
    return sorted(ids)


def sample_text(tokenizer: Any, tokens: Sequence[int], eos_ids: Sequence[int]) -> str:
    """The answer text of one sample: decoded without EOS, cut at the first newline, stripped."""
    kept = [t for t in tokens if t not in eos_ids]
    text: str = tokenizer.decode(kept, skip_special_tokens=True)
    return text.split("\n", 1)[0].strip()
