"""What every part of ``bench/realsize.py`` shares: a device-synchronised clock, peak memory
per stage, the stages' progress and notice callbacks, and ``Bench``, which runs one stage
and records its seconds, rate and peak memory.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from grait_engine.stages import StageCallbacks


class Clock:
    """``perf_counter`` after the device has finished its queued work."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


class Memory:
    """Peak memory per stage: CUDA's max allocated, or the process's peak RSS (VmHWM, reset
    between stages through /proc/self/clear_refs where the kernel allows it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.resettable = device.type == "cuda"
        self.overall = self._read()

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # resets the peak RSS (VmHWM)
            self.resettable = True
        except OSError:
            self.resettable = False

    def peak(self) -> int:
        value = self._read()
        self.overall = max(self.overall, value)
        return value

    def _read(self) -> int:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class Events:
    """The stages' progress and notice callbacks: timestamped, printed now and then."""

    def __init__(self, clock: Clock, every_s: float = 30.0) -> None:
        self.clock, self.every_s = clock, every_s
        self.log: list[tuple[float, str, int, int, str]] = []
        self.notices: list[str] = []
        self._printed = 0.0

    def progress(self, stage: str, done: int, total: int, message: str) -> None:
        now = self.clock()
        self.log.append((now, stage, done, total, message))
        if now - self._printed >= self.every_s:
            self._printed = now
            print(f"    [{stage}] {done}/{total} {message}", file=sys.stderr, flush=True)

    def notice(self, stage: str, message: str) -> None:
        self.notices.append(f"{stage}: {message}")
        print(f"    [{stage}] NOTICE {message}", file=sys.stderr, flush=True)

    def of(self, stage: str, since: float) -> list[tuple[float, str, int, int, str]]:
        return [event for event in self.log if event[1] == stage and event[0] >= since]

    def callbacks(self) -> StageCallbacks:
        """``progress`` and ``notice`` as a stage's callbacks."""
        return StageCallbacks(progress=self.progress, notice=self.notice)


@dataclass
class Bench:
    """What every part of the run shares, and the figures it collects."""

    args: argparse.Namespace
    device: torch.device
    dtype: torch.dtype
    clock: Clock
    memory: Memory
    events: Events
    batch_size: int
    figures: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run(self, name: str, work: Callable[[], Any], count: int, unit: str = "items") -> Any:
        """Run ``work()`` as stage ``name`` over ``count`` units; record seconds and peak."""
        print(f"  {name} ...", file=sys.stderr, flush=True)
        self.memory.reset()
        start = self.clock()
        result = work()
        seconds = self.clock() - start
        self.stages[name] = {
            "seconds": seconds,
            "count": count,
            "unit": unit,
            "per_s": count / seconds if seconds > 0 else math.inf,
            "peak_bytes": self.memory.peak(),
            "start": start,
        }
        print(f"  {name}: {seconds:.1f} s", file=sys.stderr, flush=True)
        return result
