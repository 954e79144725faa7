"""What the benchmarks in bench/ share: starting a run on a device, timing a call and
measuring its peak memory.

Timing reports wall-clock and process CPU seconds (all threads); with other processes on the
machine the CPU time is the steadier comparison. Peak memory is the rise of the peak resident
set (Linux ``VmHWM``, reset before the call) on CPU and ``torch.cuda.max_memory_allocated`` on
CUDA; on CPU it is best measured in a child process whose glibc returns every large tensor to
the system when freed (:func:`memory_in_child`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def start_run(args: argparse.Namespace, script: str) -> tuple[torch.device, tuple[float, ...]]:
    """The device of ``args.device`` (or exit naming ``script`` and the reason) and torch's
    CPU threads set to ``args.threads`` (0: torch's choice); returns the device and the load
    average before the run."""
    from pyrovae.errors import PyrovaeError
    from pyrovae.training import select_device

    load_before = os.getloadavg()
    try:
        device = select_device(args.device)
    except PyrovaeError as exc:
        sys.exit(f"{script}: {exc}")
    if args.threads:
        torch.set_num_threads(args.threads)
    return device, load_before


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of one call of ``fn``."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu_start


def alternated_times(
    methods: dict[str, Callable[[], Any]], repeats: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds of ``repeats`` calls of each method, the methods called in
    turn (so that whatever else slows the machine slows them alike): ``(wall, cpu)``, each
    ``{name: [seconds per call]}``."""
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            seconds, cpu_seconds = timed(fn, device)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    return wall, cpu


def peak_memory_mib(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory of one call of ``fn`` above what was in use before it, in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS to the current RSS
    base = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - base) / 1024


def memory_in_child(script: str, argv: list[str]) -> dict[str, float]:
    """Run ``script`` with ``argv`` and ``--memory-only`` in a child process whose glibc
    returns every tensor above 64 KiB to the system when freed, so its resident set follows
    the live tensors; return the peak memory of each method (the JSON object the script
    prints last)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, script, *argv, "--memory-only"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
