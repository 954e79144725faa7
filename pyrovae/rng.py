"""Random-number state: blocks that leave the caller's random stream untouched.

Evaluation and pictures draw with a fixed seed so that the same model always gets the same
number, without disturbing a training run's stream (which must stay as it is for an exact
resume); the replayed training step checks its first replay against an eager run from the
same random state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["fixed_rng", "preserved_rng"]


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Run a block, then restore torch's global random state (the CPU generator's and, for a
    CUDA ``device``, that device's) to what it was before the block."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@contextlib.contextmanager
def fixed_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run a block with torch's RNG seeded to ``seed``, restoring the outer RNG state after,
    so evaluation is reproducible and does not disturb a training run's random stream.

    Example::

        with fixed_rng(0, x.device):
            elbo = pyrovae.elbo_per_example(vae, x)
    """
    with preserved_rng(device):
        torch.manual_seed(seed)
        yield
