"""Preconditioning and the hash-defined Rademacher projection ``P``."""

from __future__ import annotations

import math

import pytest
import torch

from grait_engine.features import projection as projection_module
from grait_engine.features.projection import Projector, precondition, resolve_projection_dtype
from grait_engine.features.sign_hash import sign_words

M32 = 0xFFFFFFFF


def test_precondition_follows_method_md() -> None:
    g, m, v = torch.randn(3, 10), torch.randn(10), torch.rand(10)
    want = (0.9 * m + 0.1 * g) / torch.sqrt(0.999 * v + 0.001 * g**2 + 1e-8)
    torch.testing.assert_close(precondition(g.clone(), m, v, (0.9, 0.999), 1e-8), want)


def _mix(x: int) -> int:
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & M32
    x ^= x >> 12
    x = (x * 0x297A2D39) & M32
    return x ^ (x >> 15)


def reference_word(seed: int, group: int, column: int) -> int:
    """``word(seed, g, c)`` as sign_hash.py's docstring defines it, in plain integers."""
    salt1 = _mix((seed & M32) ^ 0x243F6A88)
    salt2 = _mix(salt1 ^ ((seed >> 32) & M32) ^ 0x85A308D3)
    salt3 = _mix(salt2 ^ 0x13198A2E)
    key1 = _mix((group & M32) ^ salt1)
    key2 = _mix(key1 ^ (group >> 32) ^ salt2)
    return _mix(((_mix(column ^ salt3) ^ key2) + key1) & M32)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40 + 7])
def test_words_match_the_integer_definition(seed: int) -> None:
    # Wrapping int32 tensor arithmetic must give the integers' bits (on every device).
    for first in (0, 5, 2**32 - 1):
        words = sign_words(seed, first, 3, 70)
        for g in range(3):
            for c in (0, 1, 31, 69):
                assert int(words[g, c]) & M32 == reference_word(seed, first + g, c)


def test_rows_are_signs_from_the_words_and_any_slice_is_the_same() -> None:
    projector = Projector(300, 40, seed=9)
    whole = projector.rows(0, 300)
    assert set(whole.unique().tolist()) == {-1.0, 1.0}
    words = sign_words(9, 0, 10, 40)
    for r in (0, 1, 33, 299):
        bit = (int(words[r // 32, 7]) >> (r % 32)) & 1
        assert whole[r, 7].item() == (1.0 if bit else -1.0)
    assert torch.equal(projector.rows(37, 101), whole[37:101])
    assert torch.equal(Projector(300, 40, seed=9).rows(0, 300), whole)
    assert not torch.equal(Projector(300, 40, seed=10).rows(0, 300), whole)


def exact(projector: Projector, rows: torch.Tensor) -> torch.Tensor:
    """The float64 reference: rows @ P / sqrt(d), L2-normalised."""
    dense = projector.rows(0, projector.n_params).double() / math.sqrt(projector.d)
    out = rows.double() @ dense
    return (out / out.norm(dim=1, keepdim=True)).float()


@pytest.mark.parametrize("method", ["lut", "dense"])
def test_both_methods_match_the_explicit_matrix(method: str, monkeypatch) -> None:
    # Small chunks, so that several chunks and a ragged last one (D % 32 != 0) are used.
    monkeypatch.setattr(projection_module, "_LUT_TABLE_BYTES", 1)
    monkeypatch.setattr(projection_module, "_DENSE_CHUNK_BYTES", 1)
    n_params = 3 * 256 + 45
    projector = Projector(n_params, 96, seed=4, method=method)
    rows = torch.randn(5, n_params)
    torch.testing.assert_close(
        projector.project(rows.clone()), exact(projector, rows), rtol=1e-5, atol=1e-6
    )
    zero = projector.project(torch.zeros(2, n_params))
    assert torch.equal(zero, torch.zeros(2, 96))


@pytest.mark.parametrize("method", ["lut", "dense"])
def test_bfloat16_products_keep_the_cosines(method: str) -> None:
    n_params = 2048 + 11
    projector = Projector(n_params, 256, seed=2, dtype="bfloat16", method=method)
    rows = torch.randn(6, n_params)
    cosine = (projector.project(rows.clone()) * exact(projector, rows)).sum(dim=1)
    assert cosine.min() > 0.9999


def test_p_is_a_rademacher_matrix_that_keeps_inner_products() -> None:
    d, n_params = 1024, 4096
    signs = Projector(n_params, d, seed=0).rows(0, n_params)
    # Balanced signs, and rows (and columns) as uncorrelated as independent ones would be.
    assert abs(signs.mean().item()) < 4 / math.sqrt(signs.numel())
    rows = signs[:512] @ signs[:512].t() / d
    assert (rows - torch.eye(512)).abs().max() < 6 / math.sqrt(d)
    columns = signs[:, :512].t() @ signs[:, :512] / n_params
    assert (columns - torch.eye(512)).abs().max() < 6 / math.sqrt(n_params)
    # Johnson-Lindenstrauss: cosines of projected vectors stay close to the true ones.
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(1, n_params, generator=generator)
    vectors = (
        base + torch.randn(20, n_params, generator=generator) * torch.linspace(0.2, 3, 20)[:, None]
    )
    vectors = vectors / vectors.norm(dim=1, keepdim=True)
    true = vectors @ vectors.t()
    projected = Projector(n_params, d, seed=0).project(vectors.clone())
    assert ((projected @ projected.t()) - true).abs().max() < 5 / math.sqrt(d)


def test_dim_is_capped_at_the_parameter_count() -> None:
    assert Projector(100, 8192, seed=0).d == 100
    assert Projector(100, 10, seed=0).d == 10


def test_auto_dtype_is_float32_on_cpus() -> None:
    assert resolve_projection_dtype("auto", "cpu") == "float32"
    assert resolve_projection_dtype("bfloat16", "cpu") == "bfloat16"
    assert resolve_projection_dtype("float32", "cpu") == "float32"


_INTERPRETED = """
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch
from grait_engine.features import projection
from grait_engine.features.fused import precondition_into, project_raw
from grait_engine.features.sign_hash import salts
grads, m, v = torch.randn(3, 2500), torch.randn(2500) * 0.1, torch.rand(2500) * 0.01
out, rows = torch.zeros(7, 3000), torch.tensor([5, 0, 2])
precondition_into(grads, m, v, (0.9, 0.999), 1e-8, out, rows, 300)
want = projection.precondition(grads.clone(), m, v, (0.9, 0.999), 1e-8)
assert (out[rows, 300:2800] - want).abs().max() < 1e-5
assert out[[1, 3, 4, 6]].abs().sum() == 0 and out[:, :300].abs().sum() == 0
for n, n_params, d, seed, splits in [(3, 1037, 130, 2**40 + 5, 3), (130, 97, 64, 1, 1)]:
    rows = torch.randn(n, n_params)
    want = rows @ projection.Projector(n_params, d, seed).rows(0, n_params)
    got = project_raw(rows, d, salts(seed), splits=splits, low=False)
    assert (got - want).abs().max() < 1e-3 * want.abs().max(), (n, n_params, d)
print("ok")
"""


def test_the_fused_kernels_compute_what_the_torch_code_does() -> None:
    """The Triton kernels of CUDA (``fused.py``), run by Triton's CPU interpreter in float32:
    the preconditioning writes G into the batch's buffer rows only, and the projection uses
    the same ``P`` as the torch methods, tile by tile, with ragged edges and several slices
    of the parameter axis. (Their bfloat16 paths need a GPU: bench/parity.py.)"""
    pytest.importorskip("triton", reason="Triton ships with CUDA builds of torch only")
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _INTERPRETED], cwd=root, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_cpu_default_picks_lut_for_few_rows_and_dense_for_many(monkeypatch) -> None:
    used: list[str] = []
    monkeypatch.setattr(
        Projector,
        "_project_lut",
        lambda self, rows: used.append("lut") or 0 * rows[:, : self.d].float(),
    )
    monkeypatch.setattr(
        Projector,
        "_project_dense",
        lambda self, rows: used.append("dense") or 0 * rows[:, : self.d].float(),
    )
    limit = projection_module.LUT_MAX_ROWS
    f32, bf16 = Projector(300, 16, seed=0), Projector(300, 16, seed=0, dtype="bfloat16")
    assert f32.method == "cpu"
    f32.project(torch.randn(limit, 300))
    f32.project(torch.randn(limit + 1, 300))
    bf16.project(torch.randn(limit + 1, 300))
    assert used == ["lut", "dense", "lut"]
