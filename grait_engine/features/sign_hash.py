"""The sign hash that defines the projection matrix ``P`` (METHOD.md stage 3.4).

The projection matrix ``P`` (D x d, entries +-1/sqrt(d)) is defined entry by entry by a
counter-based hash, so any part of it can be computed alone, on any device, with integer
tensor ops, and it is never held whole::

    P[r, c] = +1/sqrt(d)  if bit (r mod 32) of word(seed, r // 32, c) is set,  else -1/sqrt(d)

``word`` (``sign_words``) is a 32-bit hash of (seed, row group, column) in int32 arithmetic
that wraps modulo 2^32 (xor, add, multiply by odd constants, masked shifts: the same bits on
every device; ``tests/engine/features/test_projection.py`` checks them against a pure-Python
reference). ``P`` therefore depends only on (seed, D, d): not on batching, chunking, device
or which rows are projected together.

``projection.Projector`` computes ``rows @ P`` from these words; ``fused.py`` computes the
same words in Triton.
"""

from __future__ import annotations

import torch

WORD_BITS = 32  # rows of P per hash word
_M32 = 0xFFFFFFFF


def mix(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit avalanche mix of int32 tensors (wrapping multiplies, logical shifts)."""
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * 0x2C1B3C6D
    x = x ^ ((x >> 12) & 0xFFFFF)
    x = x * 0x297A2D39
    return x ^ ((x >> 15) & 0x1FFFF)


def _mix_int(x: int) -> int:
    """:func:`mix` of one Python int in [0, 2^32) (for the salts)."""
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & _M32
    x ^= x >> 12
    x = (x * 0x297A2D39) & _M32
    return x ^ (x >> 15)


def _as_int32(values: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2^32) -> int32 tensor with the same 32 bits."""
    return (values - ((values >> 31) << 32)).to(torch.int32)


def salts(seed: int) -> tuple[int, int, int]:
    """Three 32-bit salts of ``seed`` (any int >= 0), as signed int32 values."""
    lo, hi = seed & _M32, (seed >> 32) & _M32
    first = _mix_int(lo ^ 0x243F6A88)
    second = _mix_int(first ^ hi ^ 0x85A308D3)
    third = _mix_int(second ^ 0x13198A2E)
    signed = [s - (1 << 32) if s >= 1 << 31 else s for s in (first, second, third)]
    return signed[0], signed[1], signed[2]


def group_keys(seed: int, first: int, count: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The two (count,) int32 keys of row groups ``first .. first + count - 1``."""
    salt1, salt2, _ = salts(seed)
    groups = torch.arange(first, first + count, device=device, dtype=torch.int64)
    key1 = mix(_as_int32(groups & _M32) ^ salt1)
    key2 = mix(key1 ^ _as_int32(groups >> 32) ^ salt2)
    return key1, key2


def column_keys(seed: int, d: int, device: torch.device) -> torch.Tensor:
    """(d,) int32 keys of the columns of ``P``."""
    columns = torch.arange(d, device=device, dtype=torch.int32)
    return mix(columns ^ salts(seed)[2])


def sign_words(
    seed: int, first_group: int, n_groups: int, d: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(n_groups, d) int32 ``word(seed, g, c)`` for groups ``first_group ..``: bit ``b`` of
    word ``[g, c]`` is the sign bit of ``P[32 * g + b, c]``."""
    device = torch.device(device)
    key1, key2 = group_keys(seed, first_group, n_groups, device)
    columns = column_keys(seed, d, device)
    return word(key1[:, None], key2[:, None], columns[None, :])


def word(key1: torch.Tensor, key2: torch.Tensor, column: torch.Tensor) -> torch.Tensor:
    """``word(seed, g, c)`` from the group's keys and the column's key (broadcast)."""
    return mix((column ^ key2) + key1)


_SHIFTS: dict[torch.device, torch.Tensor] = {}


def expand_signs(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(32 * g, d) +-1 rows of ``P`` (before the 1/sqrt(d) scale) from (g, d) words."""
    shifts = _SHIFTS.get(words.device)
    if shifts is None:
        shifts = _SHIFTS.setdefault(
            words.device, torch.arange(WORD_BITS, device=words.device, dtype=torch.int32)
        )
    bits = (words[:, None, :] >> shifts[None, :, None]) & 1  # (g, 32, d)
    return bits.reshape(-1, words.shape[1]).to(dtype).mul_(2).sub_(1)
