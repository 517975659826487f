"""The machine a run trained on, as its manifest records it: CPU model, instruction-set flags and threads.

Two trainings of one config on CPUs with other vector units differ (PyTorch dispatches other
kernels, so floating-point sums round differently); a manifest that records the CPU's
instruction-set extensions and the threads the run used says which runs can be compared bit for
bit and which only within the seed-to-seed spread.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# The flag families that decide which vectorised kernels PyTorch and oneDNN pick.
ISA_PREFIXES: tuple[str, ...] = ("sse", "ssse", "avx", "fma", "f16c", "amx", "bmi", "vnni", "neon", "asimd", "sve")


def cpu_flags(cpuinfo: Path = CPUINFO) -> tuple[str, list[str]]:
    """``(model name, sorted instruction-set flags)`` read from ``/proc/cpuinfo`` (x86 ``flags`` or
    Arm ``Features``); ``(platform.processor(), [])`` where the file is absent."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(f for f in value.split() if f.startswith(ISA_PREFIXES))
    return model or platform.machine(), sorted(flags)


def machine_facts(threads: int | None) -> dict[str, Any]:
    """What a manifest's ``machine`` field holds: ``cpu_model``, ``isa_flags`` (list),
    ``torch_cpu_capability`` (the kernel family PyTorch dispatches to, e.g. ``AVX512``),
    ``torch_threads`` (the run's intra-op threads) and ``cpus``."""
    import torch

    model, flags = cpu_flags()
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        capability = ""
    return {"cpu_model": model, "isa_flags": flags, "torch_cpu_capability": capability,
            "torch_threads": threads, "cpus": os.cpu_count()}


__all__ = ["cpu_flags", "machine_facts"]
