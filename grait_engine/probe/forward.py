"""One forward pass of a Hugging Face causal LM returning last-position logits and the cache.

transformers renamed the cache argument and output (``past_key_values`` -> ``cache``, 5.x)
and added ``logits_to_keep`` (4.50); the names are read from the model's signature once, so
the probe runs on any supported version.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

import torch

from grait_engine.logits import base_model


@lru_cache(maxsize=16)
def _names(model_type: type[torch.nn.Module]) -> tuple[str, str | None]:
    """(cache argument name, name of the keep-last-logits argument or None) for a class."""
    params = inspect.signature(model_type.forward).parameters
    cache = "cache" if "cache" in params else "past_key_values"
    keep = next((n for n in ("logits_to_keep", "num_logits_to_keep") if n in params), None)
    return cache, keep


def last_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache: Any = None,
) -> tuple[torch.Tensor, Any]:
    """Run ``model`` on ``input_ids`` (B, L) and return ``(logits (B, V) float32, cache)``.

    ``logits`` are those of the last position (the next-token distribution); only that
    position goes through the output layer when the model supports it. ``cache`` is the
    key/value cache to continue from (None: a fresh one is created and returned).
    """
    # A class is hashable; mypy checks type[...] against Hashable with an unbound __hash__.
    cache_name, keep_name = _names(type(base_model(model)))  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "position_ids": position_ids,
        "use_cache": True,
        cache_name: cache,
    }
    if keep_name is not None:
        kwargs[keep_name] = 1
    out = model(**kwargs)
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    return out.logits[:, -1, :].float(), new_cache
