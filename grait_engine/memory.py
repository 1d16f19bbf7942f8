"""Memory: how much a stage may use, and what it does when a batch does not fit.

Every batched loop of the engine (probe, features, training, evaluation) runs its batches
through :func:`process_in_batches`: a batch that raises an out-of-memory error is retried
at half the batch size (the later batches keep the smaller size), the caller's ``notice``
hears about it (the service records it as a ``warning`` event), and only a batch of one that
does not fit fails, with :class:`OutOfMemory` saying what to change. Halving a batch changes
results by float rounding only: no stage's math depends on its batch size.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from grait_engine.stages import NoticeFn

T = TypeVar("T")
# Share of the free memory a stage plans to fill by default (the rest: activations, temps).
DEFAULT_BUDGET_SHARE = 0.5


class OutOfMemory(RuntimeError):
    """A stage ran out of memory with a batch of one: it cannot run on this device as set."""


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and the CPU allocator's failures."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def release_cached_memory() -> None:
    """Drop unreachable tensors and CUDA's cached blocks (after an out-of-memory error)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device`` now: CUDA's free plus torch's cached-but-unused blocks;
    for the CPU, the kernel's MemAvailable (or, without /proc, physical memory / 2)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def budget_bytes(device: torch.device, budget_mb: int | None) -> int:
    """The bytes a stage may plan for: ``budget_mb`` when set, else a share of what is free."""
    if budget_mb is not None:
        return int(budget_mb) * 2**20
    return int(available_bytes(device) * DEFAULT_BUDGET_SHARE)


def process_in_batches(
    order: Sequence[int],
    batch_size: int,
    work: Callable[[list[int]], None],
    *,
    stage: str,
    notice: NoticeFn | None = None,
) -> int:
    """Call ``work(rows)`` on consecutive slices of ``order`` of up to ``batch_size`` rows.

    A slice whose ``work`` runs out of memory is retried at half the size (and so are the
    slices after it); ``work`` must therefore be safe to repeat for the same rows. Returns
    the batch size in use at the end. Raises :class:`OutOfMemory` when one row does not fit.
    """
    size, start = max(1, int(batch_size)), 0
    while start < len(order):

        def attempt(size: int, start: int = start) -> int:
            rows = list(order[start : start + size])
            work(rows)
            return len(rows)

        done, size = retry_halving(attempt, size, stage=stage, what="batch size", notice=notice)
        start += done
    return size


@dataclass
class Batching:
    """A stage's batch size, lowered for good once a batch ran out of memory.

    ``run(order, work)`` is :func:`process_in_batches` with this size, keeping the size it
    ended with for the next call (the next shard or group of the same stage)."""

    size: int
    stage: str
    notice: NoticeFn | None = None

    def run(self, order: Sequence[int], work: Callable[[list[int]], None]) -> None:
        self.size = process_in_batches(order, self.size, work, stage=self.stage, notice=self.notice)

    @classmethod
    def of(cls, batch: int | Batching, stage: str) -> Batching:
        """``batch`` itself, or a new :class:`Batching` of that size."""
        return batch if isinstance(batch, Batching) else cls(int(batch), stage)


def halve_or_fail(size: int, stage: str, what: str, notice: NoticeFn | None) -> int:
    """``size // 2`` after an out-of-memory error, announced through ``notice``; raises
    :class:`OutOfMemory` when ``size`` is already 1."""
    if size <= 1:
        raise OutOfMemory(
            f"{stage}: out of memory with a {what} of 1. Free memory on the device (other "
            f"processes, a smaller memory budget), use a smaller model or dtype, or shorter items."
        )
    smaller = size // 2
    if notice is not None:
        notice(stage, f"out of memory at {what} {size}: retrying with {smaller}")
    return smaller


def retry_halving(
    attempt: Callable[[int], T], size: int, *, stage: str, what: str, notice: NoticeFn | None
) -> tuple[T, int]:
    """``attempt(size)``, halving ``size`` after each out-of-memory error; returns the result
    and the size that worked (for work that is not a list of rows, e.g. a training step)."""
    while True:
        try:
            return attempt(size), size
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            del error  # its traceback holds the failed attempt's tensors
            release_cached_memory()
            size = halve_or_fail(size, stage, what, notice)
