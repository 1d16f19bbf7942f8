"""The reference probe: one item at a time, no padding, no batching, no shared cache.

``choice``: one plain forward pass per item. ``open``: one ``model.generate`` call per
sample (batch size 1, HF's own KV-cached loop), with a logits processor that draws the token
from the sample's own uniforms exactly as the batched sampler does (``sampling.pick_tokens``)
and greedy decoding then takes it. Used by the tests for parity and by ``bench/probe.py`` as
the speed baseline; it shares ``prepare`` (prompts, context check) with the batched probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from grait_engine.probe.choice import choice_record, letter_log_probs
from grait_engine.probe.config import ProbeConfig
from grait_engine.probe.open import open_record
from grait_engine.probe.runner import Prepared, prepare
from grait_engine.probe.sampling import pick_tokens, sample_text, sample_uniforms
from grait_engine.records.item import Item


class _DrawFromUniforms(LogitsProcessor):  # type: ignore[misc]  # transformers: not followed, Any
    """Leave only the token that inverse-CDF sampling picks with this sample's uniforms."""

    def __init__(self, uniforms: torch.Tensor, temperature: float, prompt_length: int) -> None:
        self.uniforms = uniforms
        self.temperature = temperature
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_length
        token = pick_tokens(scores, self.temperature, self.uniforms[step : step + 1])
        chosen = torch.full_like(scores, float("-inf"))
        chosen[0, token] = 0.0
        return chosen


def naive_probe(
    model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    config: ProbeConfig | None = None,
    shots: Sequence[Item] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Probe records of ``items`` (same inputs and outputs as the batched probe), slowly."""
    config = config or ProbeConfig()
    prepared = prepare(model, tokenizer, items, config, shots, seed)
    return naive_items(model, tokenizer, prepared, range(len(items)), config, seed)


@torch.inference_mode()
def naive_items(
    model: Any,
    tokenizer: Any,
    prepared: Prepared,
    indices: Sequence[int],
    config: ProbeConfig,
    seed: int,
) -> list[dict[str, Any]]:
    """Records of ``prepared.items[i]`` for ``i`` in ``indices``, one item at a time."""
    device = next(model.parameters()).device
    records = []
    for i in indices:
        item = prepared.items[i]
        input_ids = torch.tensor([prepared.encoded[i]], dtype=torch.long, device=device)
        if prepared.task == "choice":
            assert prepared.letter_ids is not None
            logits = model(input_ids=input_ids).logits[:, -1, :].float()
            log_probs = torch.log_softmax(logits.double(), dim=-1)
            letter_lp = letter_log_probs(log_probs, [item], prepared.letter_ids)[0]
            records.append(choice_record(item, letter_lp))
        else:
            records.append(_naive_open(model, tokenizer, prepared, item, input_ids, config, seed))
    return records


def _naive_open(
    model: Any,
    tokenizer: Any,
    prepared: Prepared,
    item: Item,
    input_ids: torch.Tensor,
    config: ProbeConfig,
    seed: int,
) -> dict[str, Any]:
    """Sample ``config.n_samples`` answers for one item, one ``generate`` call each."""
    assert prepared.decoding is not None
    stops = prepared.decoding.stop.nonzero().squeeze(1).tolist()
    # Explicit neutral values: generate fills unset ones from the model's generation config.
    generation = GenerationConfig(
        do_sample=False,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=stops,
        pad_token_id=prepared.pad_id,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
    )
    uniforms = sample_uniforms(seed, item.id, config.n_samples, config.max_new_tokens)
    prompt_length = input_ids.shape[1]
    samples = []
    for k in range(config.n_samples):
        draw = _DrawFromUniforms(uniforms[k], config.temperature, prompt_length)
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            generation_config=generation,
            logits_processor=LogitsProcessorList([draw]),
        )
        tokens = out[0, prompt_length:].tolist()
        samples.append(sample_text(tokenizer, tokens, prepared.eos_ids))
    return open_record(item, samples)
