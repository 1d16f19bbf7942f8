"""Adam preconditioning and the seeded Rademacher projection (METHOD.md stage 3.3-3.4).

Preconditioning follows METHOD.md as written (and LESS's code): ``m' = b1*m + (1-b1)*g``,
``v' = b2*v + (1-b2)*g^2``, ``G = m' / sqrt(v' + eps)`` with eps INSIDE the square root, and
``m, v`` the warmup optimiser's bias-uncorrected moments (``exp_avg``, ``exp_avg_sq``).

The projection matrix ``P`` (D x d, entries +-1/sqrt(d)) is never held whole unless small:
it is made of blocks of ``GEN_ROWS`` rows, block ``k`` drawn on the CPU from a
``torch.Generator`` seeded by ``(seed, k)``. Any block can therefore be regenerated alone,
and ``P`` depends only on (seed, D, d): not on batch size, shard size, device, or which rows
are projected together. Blocks are cached on the device when the whole matrix fits in
``cache_bytes`` (float32), else regenerated per :meth:`Projector.project` call, which is why
callers project many rows at once.

``dtype="bfloat16"`` (the default of FeaturesConfig.projection_dtype) multiplies bfloat16
copies of the rows by the (exact) bfloat16 signs and adds each block's product into the
float32 total: about 6x faster on CPUs with AMX and on GPUs, at a relative error of about
2^-9 per entry (features change, cosines do not: about 1 - 1e-5). ``dtype="float32"``
keeps float32 throughout (the exactness reference).
"""

from __future__ import annotations

import hashlib
import math

import torch

GEN_ROWS = 1024  # rows of P per generator seed; fixed, so P never depends on a speed knob
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def precondition(
    grads: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    betas: tuple[float, float],
    eps: float,
) -> torch.Tensor:
    """(n, D) float32 ``G`` from per-sample gradients ``grads`` (n, D) and the moments (D,).

    Overwrites ``grads`` (it becomes ``m'``) to keep peak memory at two (n, D) buffers.
    """
    b1, b2 = betas
    second = torch.square(grads).mul_(1 - b2).add_(exp_avg_sq, alpha=b2).add_(eps).sqrt_()
    first = grads.mul_(1 - b1).add_(exp_avg, alpha=b1)
    return first.div_(second)


def block_seed(seed: int, block: int) -> int:
    """A 63-bit generator seed for block ``block`` of the projection with ``seed``."""
    digest = hashlib.sha256(f"grait-projection:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class Projector:
    """Projects (n, D) rows to (n, d) with the seeded Rademacher matrix, then L2-normalises.

    ``d = min(dim, n_params)``. Inputs are float32 on ``device``; so is the output.
    """

    def __init__(
        self,
        n_params: int,
        dim: int,
        seed: int,
        device: torch.device | str = "cpu",
        cache_bytes: int = 2 * 2**30,
        dtype: str = "float32",
    ) -> None:
        if n_params < 1 or dim < 1 or dtype not in DTYPES:
            raise ValueError(f"bad projector: {n_params=}, {dim=}, {dtype=} (want {list(DTYPES)})")
        self.n_params, self.d, self.seed = n_params, min(dim, n_params), seed
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.n_blocks = -(-n_params // GEN_ROWS)
        cached = n_params * self.d * self.dtype.itemsize <= cache_bytes
        self._cache: list[torch.Tensor] | None = [] if cached else None

    def block(self, k: int) -> torch.Tensor:
        """(rows, d) +-1 signs (``dtype``) of rows ``k*GEN_ROWS ..`` of ``P`` (before 1/sqrt(d))."""
        if self._cache is not None and k < len(self._cache):
            return self._cache[k]
        rows = min(GEN_ROWS, self.n_params - k * GEN_ROWS)
        generator = torch.Generator().manual_seed(block_seed(self.seed, k))
        bits = torch.randint(0, 2, (rows, self.d), generator=generator, dtype=torch.int8)
        signs = bits.to(self.device, self.dtype).mul_(2).sub_(1)
        if self._cache is not None and k == len(self._cache):
            self._cache.append(signs)
        return signs

    def project(self, rows: torch.Tensor) -> torch.Tensor:
        """(n, D) float32 -> (n, d) float32 unit rows (an all-zero row stays zero)."""
        if rows.ndim != 2 or rows.shape[1] != self.n_params:
            raise ValueError(f"want (n, {self.n_params}) rows, got {tuple(rows.shape)}")
        out = torch.zeros(rows.shape[0], self.d, dtype=torch.float32, device=rows.device)
        low = rows.to(self.dtype) if self.dtype != torch.float32 else None
        for k in range(self.n_blocks):
            lo = k * GEN_ROWS
            if low is None:
                out.addmm_(rows[:, lo : lo + GEN_ROWS], self.block(k))
            else:  # bfloat16 product of one block, summed in float32
                out.add_(torch.mm(low[:, lo : lo + GEN_ROWS], self.block(k)).float())
        out.mul_(1 / math.sqrt(self.d))
        return normalize_rows(out)


def normalize_rows(values: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm, in place; zero rows are left as they are."""
    norms = torch.linalg.vector_norm(values, dim=1, keepdim=True)
    return values.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))
