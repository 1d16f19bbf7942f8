"""Logits only where they are needed: the decoder's hidden states, then the output layer.

A causal LM's output layer (``lm_head``) maps every position's hidden state to a full
vocabulary of logits: (b, t, V), 128,256 columns for Llama 3. The loss needs them only at the
positions that predict a target token, and the choice probe only at the last position and
only for the option letters. So the model is split into its decoder (``get_decoder()``) and
its output layer (``get_output_embeddings()``), and the output layer runs on the positions
(and vocabulary rows) asked for.

Models whose forward post-processes the logits (``final_logit_softcapping``, ``logit_scale``,
``logits_scaling`` in their config) or that cannot be split fall back to the model's own full
logits: correct everywhere, only slower.
"""

from __future__ import annotations

from typing import Any

import torch

_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def base_model(model: Any) -> Any:
    """The underlying transformers model (a peft wrapper's base, LoRA layers included)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def split(model: Any) -> tuple[Any, Any] | None:
    """``(decoder, output layer)`` of ``model``, or None when it must run whole."""
    base = base_model(model)
    config = getattr(base, "config", None)
    if any(getattr(config, name, None) for name in _LOGIT_POSTPROCESSING):
        return None
    get_decoder = getattr(base, "get_decoder", None)
    get_head = getattr(base, "get_output_embeddings", None)
    if get_decoder is None or get_head is None:
        return None
    try:
        decoder, head = get_decoder(), get_head()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is base:
        return None
    return decoder, head


def logits_at(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """(N, V) float32 next-token logits at positions ``(rows[k], columns[k])`` of a batch.

    ``input_ids``, ``attention_mask``: (b, t); ``rows``, ``columns``: (N,) long. Keeps the
    autograd graph (used by the losses). No key/value cache is built.
    """
    parts = split(model)
    if parts is None:
        out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        picked: torch.Tensor = out.logits[rows, columns]
        return picked.float()
    decoder, head = parts
    hidden: torch.Tensor = decoder(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False
    ).last_hidden_state
    projected: torch.Tensor = head(hidden[rows, columns])
    return projected.float()


def last_token_logits(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    token_ids: torch.Tensor,
) -> torch.Tensor:
    """(b, len(token_ids)) float32 logits of ``token_ids`` at the last position (left padding).

    The products with the output layer's rows of ``token_ids`` are computed in float32 from
    the last hidden state, whatever the model's dtype (a bfloat16 model's own logits carry
    about 3 significant digits). These are logits, not log-probabilities: normalise over the
    tokens asked for. No key/value cache is built.
    """
    parts = split(model)
    if parts is None:
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        )
        last: torch.Tensor = out.logits[:, -1, token_ids]
        return last.float()
    decoder, head = parts
    hidden = decoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
    ).last_hidden_state[:, -1]
    if not isinstance(head, torch.nn.Linear):  # e.g. an adapter on the output layer
        every: torch.Tensor = head(hidden)
        return every.float()[:, token_ids]
    weight = head.weight[token_ids].float()
    logits: torch.Tensor = hidden.float() @ weight.t()
    if head.bias is not None:
        logits = logits + head.bias[token_ids].float()
    return logits
