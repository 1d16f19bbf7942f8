"""Adam preconditioning and the seeded Rademacher projection (METHOD.md stage 3.3-3.4).

Preconditioning follows METHOD.md as written (and LESS's code): ``m' = b1*m + (1-b1)*g``,
``v' = b2*v + (1-b2)*g^2``, ``G = m' / sqrt(v' + eps)`` with eps INSIDE the square root, and
``m, v`` the warmup optimiser's bias-uncorrected moments (``exp_avg``, ``exp_avg_sq``).

The projection matrix ``P`` (D x d, entries +-1/sqrt(d)) is defined entry by entry by a
counter-based hash (``sign_hash``), so any part of it can be computed alone, on any device,
and it is never held whole; it depends only on (seed, D, d).

Three ways to compute ``rows @ P``, chosen by the device (all give the same numbers up to
float32 summation order and, for bfloat16 products, rounding):

- ``lut`` (CPUs, up to ``LUT_MAX_ROWS`` rows or bfloat16): the bits of 8 consecutive rows at
  one column form a byte; per chunk of 8 rows a table of the 256 signed sums of those rows'
  values is built (a small matmul), and each output column adds one table entry per chunk
  (``embedding_bag`` in sum mode). That is ``n/8`` additions per entry of ``P`` instead of
  ``n`` multiply-adds, and ``P`` is never expanded to floats: for few rows, making ``P``
  costs more than multiplying by it. For many rows in float32 a CPU uses ``dense``, whose
  float32 matrix products then outweigh expanding ``P`` (bfloat16 products on a CPU without
  bfloat16 hardware are far slower, so bfloat16 stays ``lut``).
- ``fused`` (CUDA, bfloat16 products, Triton present): a Triton kernel computes each tile of
  ``P`` in registers right before its tensor-core product (``fused``), so ``P``
  never goes through GPU memory.
- ``dense`` (CUDA otherwise): chunks of ``P`` are expanded to +-1 in the product dtype in GPU
  memory and multiplied on the tensor cores.

``dtype="bfloat16"`` rounds the rows to bfloat16 before the products (the signs are exact),
with float32 sums: on CUDA the products then run on the bfloat16 tensor cores; feature
cosines stay within about 1e-5 of float32. ``dtype="float32"`` is the exact reference.
``resolve_projection_dtype`` turns the config's ``auto`` into one of them per device.
"""

from __future__ import annotations

import math
import sys
import warnings

import torch

from grait_engine.features import fused
from grait_engine.features.sign_hash import (
    WORD_BITS,
    column_keys,
    expand_signs,
    group_keys,
    salts,
    sign_words,
    word,
)
from grait_engine.memory import is_out_of_memory

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_LUT_TABLE_BYTES = 4 * 2**20  # lut: keep each chunk's sum table about this size (cache)
LUT_MAX_ROWS = 64  # CPUs: lut up to this many rows (measured crossover: 16-128 rows)
_DENSE_CHUNK_BYTES = 512 * 2**20  # dense: bytes of one expanded chunk of P


def precondition(
    grads: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    betas: tuple[float, float],
    eps: float,
) -> torch.Tensor:
    """(n, k) float32 ``G`` from per-sample gradients ``grads`` (n, k) and moments (k,).

    Works on any slice of the parameters (elementwise), so callers precondition one LoRA
    matrix at a time. Overwrites ``grads`` (it becomes ``m'``): peak memory two (n, k) buffers.
    """
    b1, b2 = betas
    second = torch.square(grads).mul_(1 - b2).add_(exp_avg_sq, alpha=b2).add_(eps).sqrt_()
    first = grads.mul_(1 - b1).add_(exp_avg, alpha=b1)
    return first.div_(second)


def answer_rows(
    grads: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    beta2: float,
    eps: float,
    answer_gradient: str,
) -> torch.Tensor:
    """(n, k) float32 answer-side rows for ``answer_gradient`` other than ``adam``
    (``FeaturesConfig.answer_gradient``), from per-sample gradients ``grads`` (n, k), not
    modified, and the warmup's second moment (k,).

    ``gradient``: ``g`` itself (LESS's target side). ``rms``: ``g / sqrt(v' + eps)``, Adam's
    step without the momentum, whose ``0.9 m`` otherwise dominates a known item's feature.
    """
    rows = grads.float().clone()
    if answer_gradient == "gradient":
        return rows
    if answer_gradient == "rms":
        second = torch.square(rows).mul_(1 - beta2).add_(exp_avg_sq, alpha=beta2).add_(eps)
        return rows.div_(second.sqrt_())
    raise ValueError(f"no answer-side rows for answer_gradient {answer_gradient!r}")


def resolve_projection_dtype(requested: str, device: torch.device | str) -> str:
    """``float32`` or ``bfloat16`` for a config value (``auto`` or either) on ``device``.

    ``auto`` is ``bfloat16`` on CUDA devices with native bfloat16 (the products run on the
    bfloat16 tensor cores), else ``float32``: on CPUs the projection runs as ``lut``, whose
    cost is reading the bits of ``P``, so bfloat16 would only round, whatever the CPU.
    """
    if requested != "auto":
        return requested
    device = torch.device(device)
    if device.type == "cuda" and _native_bf16(device):
        return "bfloat16"
    return "float32"


def _native_bf16(device: torch.device) -> bool:
    """True for CUDA devices with bfloat16 tensor cores (compute capability 8.0 and up)."""
    return torch.cuda.get_device_capability(device)[0] >= 8


class Projector:
    """Projects (n, D) rows to (n, d) with ``P``, then L2-normalises each row.

    ``d = min(dim, n_params)``; ``dtype``: ``float32`` or ``bfloat16`` products (sums are
    float32 either way); ``method``: ``lut``, ``dense``, ``fused`` or ``cpu`` (the default on
    CPUs: ``lut`` for up to ``LUT_MAX_ROWS`` rows or bfloat16, else ``dense``; on CUDA the
    default is ``fused`` for bfloat16 when Triton is present, else ``dense``). Output rows
    are float32 on the input's device.
    """

    def __init__(
        self,
        n_params: int,
        dim: int,
        seed: int,
        device: torch.device | str = "cpu",
        dtype: str = "float32",
        method: str | None = None,
    ) -> None:
        if n_params < 1 or dim < 1 or dtype not in DTYPES:
            raise ValueError(f"bad projector: {n_params=}, {dim=}, {dtype=} (want {list(DTYPES)})")
        self.n_params, self.d, self.seed = n_params, min(dim, n_params), seed
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.method = method or _default_method(self.device, self.dtype)
        if self.method not in ("lut", "dense", "fused", "cpu"):
            raise ValueError(f"method must be lut, dense, fused or cpu, not {self.method!r}")

    @property
    def row_dtype(self) -> torch.dtype:
        """What :meth:`project` wants its rows in (no copy then): the product dtype."""
        return self.dtype

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """(stop - start, d) +-1 rows ``start .. stop - 1`` of ``P`` (before 1/sqrt(d)),
        in ``dtype`` on ``device``."""
        first, last = start // WORD_BITS, -(-stop // WORD_BITS)
        words = sign_words(self.seed, first, last - first, self.d, self.device)
        offset = start - first * WORD_BITS
        return expand_signs(words, self.dtype)[offset : offset + stop - start]

    def project(self, rows: torch.Tensor) -> torch.Tensor:
        """(n, D) -> (n, d) float32 unit rows (an all-zero row stays zero)."""
        if rows.ndim != 2 or rows.shape[1] != self.n_params:
            raise ValueError(f"want (n, {self.n_params}) rows, got {tuple(rows.shape)}")
        if self.method == "lut":
            out = self._project_lut(rows)
        elif self.method == "fused":
            out = self._project_fused(rows)
        elif self.method == "dense":
            out = self._project_dense(rows)
        else:  # cpu: by the number of rows (see the module doc)
            many = rows.shape[0] > LUT_MAX_ROWS and self.dtype == torch.float32
            out = self._project_dense(rows) if many else self._project_lut(rows)
        out.mul_(1 / math.sqrt(self.d))
        return normalize_rows(out)

    def _project_fused(self, rows: torch.Tensor) -> torch.Tensor:
        try:
            return fused.project_raw(rows.to(torch.bfloat16), self.d, salts(self.seed))
        except Exception as error:
            if is_out_of_memory(error):
                raise
            # A Triton that cannot build the kernel here must not stop the job: same P.
            warnings.warn(f"fused projection unavailable ({error!r}); using dense", stacklevel=2)
            self.method = "dense"
            return self._project_dense(rows)

    def _project_dense(self, rows: torch.Tensor) -> torch.Tensor:
        n = rows.shape[0]
        out = torch.zeros(n, self.d, dtype=torch.float32, device=rows.device)
        low = rows if rows.dtype == self.dtype else rows.to(self.dtype)
        per_row = self.d * (self.dtype.itemsize + 8)  # the expanded signs and int32 temporaries
        chunk = max(WORD_BITS, _DENSE_CHUNK_BYTES // per_row // WORD_BITS * WORD_BITS)
        for start in range(0, self.n_params, chunk):
            stop = min(start + chunk, self.n_params)
            signs = self.rows(start, stop)
            _add_product(out, low[:, start:stop], signs)
        return out

    def _project_lut(self, rows: torch.Tensor) -> torch.Tensor:
        n, device = rows.shape[0], rows.device
        values = rows.float() if self.dtype == torch.float32 else rows.to(self.dtype).float()
        out = torch.zeros(self.d, n, dtype=torch.float32, device=device)  # (d, n): bag output
        patterns = _patterns(device)
        columns = column_keys(self.seed, self.d, device)
        # Rows per chunk: a multiple of 32 whose sum table (rows/8 * 256 * n floats) stays small.
        chunk = _LUT_TABLE_BYTES // (32 * 4 * n) // WORD_BITS * WORD_BITS
        chunk = min(max(chunk, 256), 4096)
        for start in range(0, self.n_params, chunk):
            stop = min(start + chunk, self.n_params)
            part = values[:, start:stop]
            if (stop - start) % WORD_BITS:  # zero rows beyond D contribute nothing
                pad = WORD_BITS - (stop - start) % WORD_BITS
                part = torch.nn.functional.pad(part, (0, pad))
            n_groups = part.shape[1] // WORD_BITS
            n_bytes = 4 * n_groups
            key1, key2 = group_keys(self.seed, start // WORD_BITS, n_groups, device)
            words = word(key1[None, :], key2[None, :], columns[:, None])  # (d, groups)
            # Byte q of word [c, g]: the signs of rows 32g + 8q .. 32g + 8q + 7 at column c;
            # the index of its table entry is 256 * (4g + q) + byte.
            offsets = torch.arange(0, 256 * n_bytes, 256, device=device, dtype=torch.int32)
            index = torch.add(words.view(torch.uint8).view(self.d, n_bytes), offsets)
            # table[k, p, :] = sum_b sign(p, b) * part[:, 8k + b]: (n_bytes * 256, n)
            chunks = part.t().reshape(n_bytes, 8, n)
            table = torch.matmul(patterns, chunks).reshape(n_bytes * 256, n)
            out += torch.nn.functional.embedding_bag(index, table, mode="sum")
        return out.t().contiguous()


def _default_method(device: torch.device, dtype: torch.dtype) -> str:
    if device.type == "cpu":
        return "cpu"  # lut or dense per call, by the number of rows
    if dtype == torch.bfloat16 and fused.available(device):
        return "fused"
    return "dense"


def _add_product(out: torch.Tensor, rows: torch.Tensor, signs: torch.Tensor) -> None:
    """``out += rows @ signs`` with float32 sums (bfloat16 products on CUDA use mm's
    float32 output where this torch has it)."""
    if rows.dtype == torch.float32:
        out.addmm_(rows, signs)
        return
    if rows.is_cuda:
        try:
            out.add_(torch.mm(rows, signs, out_dtype=torch.float32))
            return
        except (TypeError, RuntimeError):
            pass
    out.add_(torch.mm(rows, signs).float())


_PATTERN_CACHE: dict[torch.device, torch.Tensor] = {}


def _patterns(device: torch.device) -> torch.Tensor:
    """(256, 8) float32: row ``p`` holds the signs (+1 for a set bit) of byte value ``p``."""
    cached = _PATTERN_CACHE.get(device)
    if cached is None:
        values = torch.arange(256, device=device)[:, None] >> torch.arange(8, device=device)
        cached = _PATTERN_CACHE.setdefault(device, (values & 1).float().mul_(2).sub_(1))
    return cached


def normalize_rows(values: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm, in place; zero rows are left as they are."""
    norms = torch.linalg.vector_norm(values, dim=1, keepdim=True)
    return values.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))


# ``lut`` reads the bytes of int32 words in memory order: byte q holds bits 8q .. 8q + 7
# only on little-endian machines (every platform torch ships wheels for).
assert sys.byteorder == "little", "the lut projection assumes a little-endian machine"
