"""Random-number state: blocks that leave the caller's random stream untouched.

Evaluation and pictures draw with a fixed seed so that the same model always gets the same
number, without disturbing a training run's stream (which must stay as it is for an exact
resume); the replayed training step checks its first replay against an eager run from the
same random state.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch

__all__ = ["derived_seed", "fixed_rng", "preserved_rng"]


def derived_seed(seed: int, *keys: int | str) -> int:
    """A seed in ``[0, 2**63)`` determined by ``seed`` and ``keys`` (e.g. a block's index),
    so that each block of a computation draws its own reproducible stream, whatever order or
    process the blocks run in.

    Example::

        with fixed_rng(derived_seed(0, "block", 3), torch.device("cpu")):
            noise = torch.randn(4)
    """
    text = "/".join(map(str, (seed, *keys))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


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
