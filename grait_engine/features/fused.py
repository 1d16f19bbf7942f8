"""Triton kernels for the features stage on CUDA: the ``fused`` projection and the fused
preconditioning of per-sample gradients.

**Projection**: ``rows @ P`` with ``P`` made inside the matmul kernel.

The ``dense`` method writes each chunk of ``P`` to GPU memory as +-1 values and reads it back
for the matmul: a few bytes per entry of ``P``, about 2-4 TB per pass over ``P`` at 8B / r 128
/ d 8192, which costs more than the products. This Triton kernel instead computes each tile
of ``P`` in registers from the same hash (``sign_hash.sign_words``, bit for bit) right
before its ``tl.dot``: for a tile of 64 rows x 128 columns, 2 x 128 hash words, then a shift
and a mask per entry. Memory traffic is only the rows being projected.

Each program owns a (rows, columns) output tile and one slice of the parameter axis
(split-K); the slices' partial products go to a (splits, n, d) float32 buffer that is
summed in a fixed order afterwards, so results do not depend on scheduling (no atomics).
Products are bfloat16 x bfloat16 (exact +-1 signs) with float32 accumulation.

Needs Triton and a CUDA device; ``available()`` says whether it can run here. Rows of ``P``
(the parameter count) must stay below 2^36, where the group index fits 31 bits.

**Preconditioning** (``precondition_into``): ``G = m' / sqrt(v' + eps)`` of one LoRA matrix's
per-sample gradients, computed in float32 and written straight into the batch's rows of the
gradient buffer in the buffer's dtype: one pass over the gradients instead of the nine
elementwise passes, the cast and the scatter of the torch version
(``projection.precondition``), which stays the CPU path and the reference.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

try:  # Triton ships with CUDA builds of torch; CPU-only installs do without this method.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on machines without Triton
    triton = None
    tl = None

BLOCK_M, BLOCK_N, BLOCK_K = 128, 256, 64  # BLOCK_K: a multiple of 32 (whole hash words)


def available(device: torch.device) -> bool:
    """True when the fused kernel can run on ``device`` (CUDA and Triton present)."""
    return triton is not None and device.type == "cuda"


if triton is not None:

    @triton.jit
    def _mix(x):  # sign_hash.mix, in Triton (int32: wrapping multiplies, masked shifts)
        x = x ^ ((x >> 15) & 0x1FFFF)
        x = x * 0x2C1B3C6D
        x = x ^ ((x >> 12) & 0xFFFFF)
        x = x * 0x297A2D39
        return x ^ ((x >> 15) & 0x1FFFF)

    @triton.jit
    def _project_kernel(
        rows_ptr,
        out_ptr,
        n,
        n_params,
        d,
        k_per_split,
        stride_rows,
        stride_split,
        stride_out,
        salt1,
        salt2,
        salt3,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BK: tl.constexpr,
        LOW: tl.constexpr,
    ):
        pid_m, pid_n, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        offs_m = pid_m * BM + tl.arange(0, BM)
        offs_n = pid_n * BN + tl.arange(0, BN)
        # Row offsets in int64: row * D passes 2^31 at Llama scale (D = 109M).
        row_start = offs_m.to(tl.int64)[:, None] * stride_rows
        column_key = _mix(offs_n.to(tl.int32) ^ salt3)  # (BN,)
        shifts = tl.arange(0, 32)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        k_start = pid_k * k_per_split
        for k0 in range(k_start, k_start + k_per_split, BK):
            offs_k = k0 + tl.arange(0, BK)
            a = tl.load(
                rows_ptr + row_start + offs_k[None, :],
                mask=(offs_m[:, None] < n) & (offs_k[None, :] < n_params),
                other=0.0,
            )
            groups = (k0 // 32 + tl.arange(0, BK // 32)).to(tl.int32)  # (BK/32,)
            key1 = _mix(groups ^ salt1)
            key2 = _mix(key1 ^ salt2)  # the group's high 32 bits are 0 (see the module doc)
            words = _mix((column_key[None, :] ^ key2[:, None]) + key1[:, None])  # (BK/32, BN)
            bits = (words[:, None, :] >> shifts[None, :, None]) & 1  # (BK/32, 32, BN)
            signs = tl.where(tl.reshape(bits, (BK, BN)) != 0, 1.0, -1.0)
            if LOW:
                acc += tl.dot(a.to(tl.bfloat16), signs.to(tl.bfloat16))
            else:  # float32 products (only for checking the kernel's logic)
                acc += tl.dot(a.to(tl.float32), signs, input_precision="ieee")
        split_start = pid_k.to(tl.int64) * stride_split
        out = out_ptr + split_start + offs_m.to(tl.int64)[:, None] * stride_out + offs_n[None, :]
        tl.store(out, acc, mask=(offs_m[:, None] < n) & (offs_n[None, :] < d))


if triton is not None:

    @triton.jit
    def _precondition_kernel(
        grads_ptr,
        exp_avg_ptr,
        exp_avg_sq_ptr,
        out_ptr,
        rows_ptr,
        size,
        offset,
        stride_out,
        b1,
        b2,
        eps,
        BLOCK: tl.constexpr,
    ):
        sample, block = tl.program_id(0), tl.program_id(1)
        cols = block * BLOCK + tl.arange(0, BLOCK)
        mask = cols < size
        g = tl.load(grads_ptr + sample.to(tl.int64) * size + cols, mask=mask, other=0.0)
        g = g.to(tl.float32)
        m = tl.load(exp_avg_ptr + cols, mask=mask, other=0.0)
        v = tl.load(exp_avg_sq_ptr + cols, mask=mask, other=1.0)
        value = (g * (1 - b1) + m * b1) / tl.sqrt(g * g * (1 - b2) + v * b2 + eps)
        row = tl.load(rows_ptr + sample).to(tl.int64)
        target = out_ptr + row * stride_out + offset + cols
        tl.store(target, value.to(out_ptr.dtype.element_ty), mask=mask)


def precondition_into(
    grads: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    betas: tuple[float, float],
    eps: float,
    out: torch.Tensor,
    rows: torch.Tensor,
    offset: int,
) -> None:
    """``out[rows[i], offset : offset + k] = G[i]`` for per-sample gradients ``grads`` (b, k)
    (any float dtype) and the moments ``exp_avg``, ``exp_avg_sq`` (k,) float32 of this
    matrix; ``out``: the (N, D) gradient buffer, ``rows`` (b,) its rows for the batch."""
    grads, size = grads.contiguous(), grads.shape[1]
    block = 1024
    grid: Any = (grads.shape[0], -(-size // block))
    _precondition_kernel[grid](
        grads,
        exp_avg.contiguous(),
        exp_avg_sq.contiguous(),
        out,
        rows,
        size,
        offset,
        out.stride(0),
        float(betas[0]),
        float(betas[1]),
        float(eps),
        BLOCK=block,
    )


def _splits(n: int, d: int, n_params: int, device: torch.device) -> int:
    """Slices of the parameter axis: enough programs for about four waves of the GPU."""
    tiles = -(-n // BLOCK_M) * -(-d // BLOCK_N)
    units = _multiprocessors(device)
    wanted = max(1, (4 * units) // tiles)
    return max(1, min(wanted, -(-n_params // (BLOCK_K * 16))))


@functools.lru_cache(maxsize=8)
def _multiprocessors(device: torch.device) -> int:
    return int(torch.cuda.get_device_properties(device).multi_processor_count)


def project_raw(
    rows: torch.Tensor,
    d: int,
    salts: tuple[int, int, int],
    splits: int | None = None,
    low: bool = True,
) -> torch.Tensor:
    """(n, d) float32 ``rows @ P`` (unscaled, unnormalised) for (n, D) CUDA rows.

    ``salts``: ``sign_hash.salts(seed)``, the same as the torch methods use; ``splits``:
    slices of the parameter axis (default: enough to fill the GPU); ``low``: bfloat16
    products (the method's purpose), else float32 ones (to check the kernel's logic)."""
    rows = rows.contiguous()
    n, n_params = rows.shape
    if n_params >= 2**36:
        raise ValueError("the fused projection supports fewer than 2^36 parameters")
    splits = splits or _splits(n, d, n_params, rows.device)
    per_split = -(-n_params // splits)
    per_split = -(-per_split // BLOCK_K) * BLOCK_K
    splits = -(-n_params // per_split)
    partial = torch.empty(splits, n, d, dtype=torch.float32, device=rows.device)
    grid: Any = (-(-n // BLOCK_M), -(-d // BLOCK_N), splits)
    _project_kernel[grid](
        rows,
        partial,
        n,
        n_params,
        d,
        per_split,
        rows.stride(0),
        partial.stride(0),
        partial.stride(1),
        salts[0],
        salts[1],
        salts[2],
        BM=BLOCK_M,
        BN=BLOCK_N,
        BK=BLOCK_K,
        LOW=low,
        num_warps=8,
        num_stages=3,
    )
    return partial.sum(dim=0)
