"""The warmup LoRA fine-tune and its Adam moments (METHOD.md stage 3.1).

``warmup/`` holds the adapter (``save_adapter``: peft files), ``moments.safetensors``
(``exp_avg`` and ``exp_avg_sq``, each (D,) float32 in ``lora_parameters`` order, with the
parameter names as metadata) and ``manifest.json`` (written last, with the inputs hash).
With ``checkpoints`` K > 1 the moments file also holds the K - 1 earlier epoch-end states
(``state<k>.weights`` / ``.exp_avg`` / ``.exp_avg_sq``, k = 0 the oldest) and the manifest
their learning-rate weights (``checkpoint_weights``, K of them, the final state last).
A complete ``warmup/`` for the same inputs is loaded instead of trained again.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from grait_engine.artifacts import atomic_write_bytes, read_manifest, write_manifest
from grait_engine.features.config import FeaturesConfig
from grait_engine.features.sequences import collate, encode, per_sample_loss
from grait_engine.lora import (
    ADAPTER_FILES,
    attach_lora,
    cuda_devices,
    load_adapter,
    lora_parameters,
    save_adapter,
)
from grait_engine.memory import retry_halving
from grait_engine.records.item import Item
from grait_engine.stages import NoticeFn

MOMENTS = "moments.safetensors"


@dataclass(frozen=True)
class WarmupState:
    """The warmup at the end of one epoch: flat LoRA ``weights``, ``exp_avg`` and
    ``exp_avg_sq`` (each (D,) float32 CPU, ``lora_parameters`` order) and ``weight``, its
    share of the features (the epoch's learning rate over the sum of the chosen epochs')."""

    weights: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    weight: float


@dataclass(frozen=True)
class Warmup:
    """A warmed-up model: ``model`` (PeftModel, eval mode, LoRA weights requiring grad, the
    final state), ``exp_avg`` / ``exp_avg_sq`` (D,) float32 CPU moments of the final state,
    the manifest ``info`` and ``states``: the ``checkpoints`` epoch-end states the features
    are taken at, oldest first, the final state last."""

    model: PeftModel
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    info: dict[str, Any]
    states: tuple[WarmupState, ...]


def select_warmup_items(
    items: Sequence[Item], correctness: Mapping[str, float], config: FeaturesConfig, seed: int
) -> tuple[list[Item], bool]:
    """``D_warm`` in pool order, and whether the fallback was used.

    Items with ``c >= warmup_min_correct``; a seeded sample of ``warmup_max_items`` when
    more qualify. When none does, the ``warmup_fallback_items`` most correct items (stable
    on ties) so the moments are still those of a real fine-tune on what the model knows best.
    """
    score = {item.id: float(correctness.get(item.id, 0.0)) for item in items}
    chosen = [item for item in items if score[item.id] >= config.warmup_min_correct]
    fallback = not chosen
    if fallback:
        ranked = sorted(range(len(items)), key=lambda i: -score[items[i].id])
        keep = sorted(ranked[: config.warmup_fallback_items])
        return [items[i] for i in keep], True
    if len(chosen) > config.warmup_max_items:
        picked = set(random.Random(seed).sample(range(len(chosen)), config.warmup_max_items))
        chosen = [item for i, item in enumerate(chosen) if i in picked]
    return chosen, fallback


def train_warmup(
    model: PeftModel,
    tokenizer: Any,
    items: Sequence[Item],
    config: FeaturesConfig,
    seed: int,
    check: Callable[[], None] | None = None,
    notice: NoticeFn | None = None,
    target_loss: str = "mean",
) -> tuple[list[WarmupState], int]:
    """AdamW on the LoRA weights over ``items`` (gold targets), seeded shuffle and dropout.

    Loss per step: the batch mean of ``l(x, y)`` (reduced as ``target_loss`` says, the
    final training's); grad clip 1.0. A step that runs out of memory is redone in
    micro-batches of half the size (the same gradient, up to rounding).
    Output: the states at the end of the last ``config.checkpoints`` epochs (oldest first;
    the final state last) and the number of steps.
    Side effects: trains ``model`` in place and leaves it in eval mode; the global RNG (and
    that of the model's CUDA device) is restored.
    """
    params = [param for _, param in lora_parameters(model)]
    optimizer = torch.optim.AdamW(
        params,
        lr=config.lr,
        betas=config.adam_betas,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    device = params[0].device
    sequences = [encode(item, False, tokenizer) for item in items]
    pad_id = tokenizer.pad_token_id
    micro = config.warmup_batch_size
    steps = 0
    states: list[WarmupState] = []

    def step(rows: list[Any], size: int) -> None:
        optimizer.zero_grad(set_to_none=True)  # a retried step starts clean
        for start in range(0, len(rows), size):
            part = rows[start : start + size]
            batch = collate(part, pad_id, device)
            loss = per_sample_loss(model, batch, target_loss).sum() / len(rows)
            torch.autograd.backward(loss)

    with torch.random.fork_rng(devices=cuda_devices(device)):
        torch.manual_seed(seed)
        model.train()
        for epoch in range(config.warmup_epochs):
            order = random.Random(f"{seed}:{epoch}").sample(range(len(sequences)), len(sequences))
            for start in range(0, len(order), config.warmup_batch_size):
                if check is not None:
                    check()
                rows = [sequences[i] for i in order[start : start + config.warmup_batch_size]]
                _, micro = retry_halving(
                    functools.partial(step, rows),
                    micro,
                    stage="features",
                    what="warmup micro-batch size",
                    notice=notice,
                )
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                steps += 1
            if epoch >= config.warmup_epochs - config.checkpoints:
                states.append(_snapshot(params, optimizer))
    model.eval()
    # The warmup's learning rate is constant: every epoch weighs the same (LESS weighs each
    # checkpoint by its epoch's mean rate, which a schedule would make differ).
    rates = [config.lr] * len(states)
    shares = [rate / sum(rates) for rate in rates]
    return [
        replace(state, weight=share) for state, share in zip(states, shares, strict=True)
    ], steps


def _snapshot(params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> WarmupState:
    """The flat CPU float32 weights and moments of ``params`` now (weight set later)."""
    state = [optimizer.state[param] for param in params]
    return WarmupState(
        weights=torch.cat([param.detach().float().reshape(-1).cpu() for param in params]),
        exp_avg=torch.cat([s["exp_avg"].float().reshape(-1).cpu() for s in state]),
        exp_avg_sq=torch.cat([s["exp_avg_sq"].float().reshape(-1).cpu() for s in state]),
        weight=1.0,
    )


def save_warmup(directory: Path, warmup: Warmup) -> None:
    """Write the adapter, the moments, then the manifest (with ``warmup.info``) last."""
    save_adapter(warmup.model, directory)
    names = [name for name, _ in lora_parameters(warmup.model)]
    tensors = {"exp_avg": warmup.exp_avg.contiguous(), "exp_avg_sq": warmup.exp_avg_sq.contiguous()}
    for k, state in enumerate(warmup.states[:-1]):  # the final state is the adapter itself
        tensors[f"state{k}.weights"] = state.weights.contiguous()
        tensors[f"state{k}.exp_avg"] = state.exp_avg.contiguous()
        tensors[f"state{k}.exp_avg_sq"] = state.exp_avg_sq.contiguous()
    data = safetensors_bytes(tensors, {"names": json.dumps(names)})
    atomic_write_bytes(directory / MOMENTS, data)
    write_manifest(directory, [*ADAPTER_FILES, MOMENTS], warmup.info)


def load_warmup(directory: Path, base_model: Any, inputs_hash: str) -> Warmup | None:
    """The saved warmup on ``base_model`` if ``directory`` is complete for ``inputs_hash``,
    else None. Side effect on success: the adapter is injected into ``base_model``."""
    manifest = read_manifest(directory)
    if manifest is None or manifest.get("inputs_hash") != inputs_hash:
        return None
    model = load_adapter(base_model, directory)
    for _, param in lora_parameters(model):
        param.requires_grad_(True)  # the per-sample hooks need LoRA outputs in the graph
    moments = load_file(str(directory / MOMENTS))
    info = {k: v for k, v in manifest.items() if k != "files"}
    shares = info.get("checkpoint_weights", [1.0])
    states = [
        WarmupState(
            moments[f"state{k}.weights"],
            moments[f"state{k}.exp_avg"],
            moments[f"state{k}.exp_avg_sq"],
            float(share),
        )
        for k, share in enumerate(shares[:-1])
    ]
    final = WarmupState(
        flat_lora_weights(model), moments["exp_avg"], moments["exp_avg_sq"], float(shares[-1])
    )
    return Warmup(model, final.exp_avg, final.exp_avg_sq, info, (*states, final))


def flat_lora_weights(model: torch.nn.Module) -> torch.Tensor:
    """(D,) float32 CPU copy of ``model``'s LoRA weights in ``lora_parameters`` order."""
    return torch.cat([p.detach().float().reshape(-1).cpu() for _, p in lora_parameters(model)])


def load_lora_weights(model: torch.nn.Module, weights: torch.Tensor) -> None:
    """Copy the flat (D,) ``weights`` into ``model``'s LoRA parameters, in place (each
    keeps its dtype and device)."""
    offset = 0
    with torch.no_grad():
        for _, param in lora_parameters(model):
            size = param.numel()
            param.copy_(weights[offset : offset + size].reshape(param.shape))
            offset += size
    if offset != weights.numel():
        raise ValueError(f"{weights.numel()} weights for {offset} LoRA parameters")


def run_warmup(
    base_model: Any,
    tokenizer: Any,
    items: Sequence[Item],
    correctness: Mapping[str, float],
    config: FeaturesConfig,
    seed: int,
    directory: Path,
    inputs_hash: str,
    check: Callable[[], None] | None = None,
    notice: NoticeFn | None = None,
    target_loss: str = "mean",
) -> Warmup:
    """Load ``directory``'s warmup for ``inputs_hash``, or select, train and save one."""
    loaded = load_warmup(directory, base_model, inputs_hash)
    if loaded is not None:
        return loaded
    chosen, fallback = select_warmup_items(items, correctness, config, seed)
    targets = list(config.target_modules) if config.target_modules is not None else None
    model = attach_lora(
        base_model, config.lora_r, config.lora_alpha, config.lora_dropout, targets, seed
    )
    states, steps = train_warmup(model, tokenizer, chosen, config, seed, check, notice, target_loss)
    final = states[-1]
    info = {
        "inputs_hash": inputs_hash,
        "n_items": len(chosen),
        "fallback": fallback,
        "steps": steps,
        "n_params": int(final.exp_avg.numel()),
    }
    if len(states) > 1:
        info["checkpoint_weights"] = [state.weight for state in states]
    warmup = Warmup(model, final.exp_avg, final.exp_avg_sq, info, tuple(states))
    save_warmup(directory, warmup)
    return warmup
