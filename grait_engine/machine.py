"""Facts about the machine (and the torch stack) a computation ran on, recorded next to the
figures it produced.

Float reductions, and so trained weights, follow the CPU's kernels: a toy world built twice
on one machine is identical bit for bit, but two machines can differ even when torch
reports the same capability (``AVX512`` covers CPUs with and without AMX). So builds and
benchmarks record the CPU model and the library versions beside the capability.
"""

from __future__ import annotations

import platform
from typing import Any

import tokenizers
import torch
import transformers


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere the platform's processor string)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict[str, Any]:
    """``{cpu_capability, cpu_model, torch, transformers, tokenizers, torch_threads}`` of this
    process, now (versions as strings; ``torch_threads`` the count torch uses at the call)."""
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch_threads": torch.get_num_threads(),
    }
