"""Random-number blocks: fixed_rng draws the same numbers for the same seed and, like
preserved_rng, leaves the caller's random stream as it was."""

from __future__ import annotations

import torch

from pyrovae.rng import fixed_rng, preserved_rng

CPU = torch.device("cpu")


def test_fixed_rng_is_reproducible_and_restores_the_outer_stream():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with fixed_rng(7, CPU):
        a = torch.rand(5)
    with fixed_rng(7, CPU):
        b = torch.rand(5)
    with fixed_rng(8, CPU):
        c = torch.rand(5)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.rand(3), expected_next)  # as if the blocks had not run


def test_preserved_rng_restores_the_state_after_the_block():
    state = torch.get_rng_state()
    with preserved_rng(CPU):
        first = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(torch.rand(4), first)  # the block's draws are drawn again after it
