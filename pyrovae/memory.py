"""Memory: how much a device has left.

* :func:`available_memory`: the bytes that can still be allocated on a device;
* :func:`data_memory_budget`: the share of it a data set may take before it is streamed;
* :func:`format_bytes`: a number of bytes for a message (``"4.2 GB"``).

How much a computation takes is :mod:`pyrovae.peak_memory`'s. This module imports nothing of
pyrovae, so that any module may ask it.

Example::

    format_bytes(available_memory())   # e.g. '18.3 GB'
"""

from __future__ import annotations

import os

import torch

__all__ = ["available_memory", "data_memory_budget", "format_bytes"]


def available_memory(device: torch.device | str | None = None) -> int:
    """Bytes that can still be allocated on ``device`` (default: the host): on the host
    ``MemAvailable`` of ``/proc/meminfo`` where there is one, else the physical memory; on a
    CUDA device its free memory plus what PyTorch's caching allocator holds unused."""
    if device is not None and torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 1 << 62  # unknown: no bound


def data_memory_budget(device: torch.device | str) -> int:
    """Bytes a data set may take to be held in memory on ``device``: half of the host's
    :func:`available_memory`, and on a GPU also half of the GPU's; data larger than this is
    streamed (``data.in_memory = "auto"``)."""
    budget = available_memory() // 2
    if torch.device(device).type == "cuda":
        budget = min(budget, available_memory(device) // 2)
    return budget


def format_bytes(n: int | float) -> str:
    """``n`` bytes in decimal units for a message: ``"512 B"``, ``"3.2 kB"``, ``"12.6 MB"``,
    ``"4.2 GB"``, ``"4,000 GB"``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{int(n)} B"
