"""Per-sample gradients of the LoRA parameters, from one batched forward/backward.

Every LoRA matrix is the weight of a bias-free ``nn.Linear`` (peft's ``lora_A.<adapter>`` /
``lora_B.<adapter>``): for ``y = x W^T`` and a loss that is a SUM over samples of each
sample's own loss, sample ``i``'s gradient is ``dW_i = sum_t dy_{i,t}^T x_{i,t}``, an outer
product summed over its tokens. So one forward hook per LoRA Linear keeps its input ``x`` and
output ``y``; ``torch.autograd.grad(loss, [y...])`` gives every ``dy`` in one backward pass,
and one ``bmm`` per matrix gives the per-sample gradients. Padding and prompt positions have
``dy = 0`` (the loss masks them; right padding is causal-invisible), so they add nothing.

Why hooks rather than ``torch.func`` (``vmap(grad(functional_call))``): vmap re-runs the
whole model per sample under a batching transform (slower on the CPU, and HF attention /
peft dispatch are not all vmap-friendly), while the hooks cost one ordinary backward pass
plus one bmm per LoRA matrix, the same work as the summed weight gradient of plain training.
Asking autograd only for ``dy`` also skips the (unused) summed parameter gradients.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from grait_engine.features.sequences import Batch, per_sample_loss
from grait_engine.lora import lora_parameters


@dataclass(frozen=True)
class LoraLayout:
    """Where each LoRA matrix sits in the flat gradient vector (``lora_parameters`` order).

    ``names`` (parameter names), ``modules`` (the owning Linear layers), ``offsets`` and
    ``sizes`` (slices of the flat vector of length ``n_params``).
    """

    names: tuple[str, ...]
    modules: tuple[torch.nn.Linear, ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def n_params(self) -> int:
        return self.offsets[-1] + self.sizes[-1] if self.sizes else 0


def lora_layout(model: torch.nn.Module) -> LoraLayout:
    """The :class:`LoraLayout` of ``model``'s LoRA weights; ValueError if there are none or a
    LoRA parameter is not the weight of a bias-free Linear (the hooks' assumption)."""
    modules = dict(model.named_modules())
    names: list[str] = []
    owners: list[torch.nn.Linear] = []
    offsets: list[int] = []
    sizes: list[int] = []
    offset = 0
    for name, param in lora_parameters(model):
        owner = modules.get(name.rsplit(".", 1)[0])
        if (
            not name.endswith(".weight")
            or not isinstance(owner, torch.nn.Linear)
            or owner.bias is not None
        ):
            raise ValueError(f"{name} is not the weight of a bias-free nn.Linear")
        names.append(name)
        owners.append(owner)
        offsets.append(offset)
        sizes.append(param.numel())
        offset += param.numel()
    if not names:
        raise ValueError("the model has no LoRA parameters")
    return LoraLayout(tuple(names), tuple(owners), tuple(offsets), tuple(sizes))


_HALF = (torch.bfloat16, torch.float16)


def module_grads(
    model: torch.nn.Module, batch: Batch, layout: LoraLayout, target_loss: str = "mean"
) -> Iterator[tuple[int, torch.Tensor]]:
    """Per-sample gradients one LoRA matrix at a time: yields ``(k, grads)`` for matrix ``k``
    of ``layout``, ``grads`` (b, sizes[k]), float32 (in the model's dtype for a half-precision
    model on CUDA) (row ``i``: the gradient of
    ``l(x_i, y_i)``, reduced as ``target_loss`` says). One forward and one backward pass for the whole batch, so the (b, D)
    gradients of all matrices never exist at once. The model should be in eval mode (no
    dropout) with its LoRA weights requiring grad; no ``.grad`` is written."""
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def keep(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        captured[id(module)] = (args[0], out)

    handles = [module.register_forward_hook(keep) for module in layout.modules]
    try:
        losses = per_sample_loss(model, batch, target_loss)
    finally:
        for handle in handles:
            handle.remove()
    inputs = [captured[id(module)][0] for module in layout.modules]
    outputs = [captured[id(module)][1] for module in layout.modules]
    captured.clear()
    # Sum of per-sample losses: each row's dy is that sample's own gradient (no 1/b).
    grad_outputs = list(torch.autograd.grad(losses.sum(), outputs))
    del outputs, losses
    b = batch.input_ids.shape[0]
    with torch.no_grad():  # x of lora_B is in the graph; these products must not be
        for k, size in enumerate(layout.sizes):
            x, dy = inputs[k], grad_outputs[k]
            inputs[k] = grad_outputs[k] = None  # type: ignore[call-overload]
            # (b, t, out)^T @ (b, t, in) -> (b, out, in): the weight's shape, like .grad.
            # CUDA multiplies half-precision activations as they are (tensor cores, float32
            # sums, rounded once at the end); elsewhere the products are float32.
            if not (x.is_cuda and x.dtype == dy.dtype and x.dtype in _HALF):
                x, dy = x.float(), dy.float()
            yield k, torch.bmm(dy.transpose(1, 2), x).reshape(b, size)


def per_sample_grads(
    model: torch.nn.Module, batch: Batch, layout: LoraLayout, target_loss: str = "mean"
) -> torch.Tensor:
    """(b, D) float32: row ``i`` is the gradient of ``l(x_i, y_i)`` w.r.t. the LoRA weights,
    flattened in ``layout`` order (all of :func:`module_grads` in one buffer)."""
    b = batch.input_ids.shape[0]
    flat = torch.empty(b, layout.n_params, dtype=torch.float32, device=batch.input_ids.device)
    for k, grads in module_grads(model, batch, layout, target_loss):
        offset = layout.offsets[k]
        flat[:, offset : offset + layout.sizes[k]] = grads.float()
    return flat


def reference_grad(
    model: torch.nn.Module, batch: Batch, layout: LoraLayout, target_loss: str = "mean"
) -> torch.Tensor:
    """(D,) float32 gradient of a ONE-sequence ``batch`` by plain autograd ``.grad``.

    The per-sample reference: one backward per sample. Side effect: overwrites (then clears)
    the ``.grad`` of the LoRA parameters.
    """
    if batch.input_ids.shape[0] != 1:
        raise ValueError("reference_grad takes a batch of exactly one sequence")
    params = [param for _, param in lora_parameters(model)]
    for param in params:
        param.grad = None
    torch.autograd.backward(per_sample_loss(model, batch, target_loss).sum())
    flat = torch.cat([param.grad.float().reshape(-1) for param in params])  # type: ignore[union-attr]
    for param in params:
        param.grad = None
    return flat
