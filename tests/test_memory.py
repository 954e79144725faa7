"""pyrovae.memory: the memory a device has, and the peak memory of a computation counted on
fake tensors, against a count by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyrovae import memory, peak_memory


def test_peak_bytes_counts_the_live_results_and_one_workspace_by_hand():
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    n = 100
    x = torch.randn(n, 4)
    # float32 results: the first layer's (n, 8), then the relu's (n, 8) while the first is
    # still its argument, each operation with a workspace as large as its largest operand
    # (n, 8): the peak is during the relu, 3 x (n, 8) numbers (the weights and the input,
    # allocated before, do not count)
    expected = 3 * n * 8 * 4
    assert peak_memory.peak_bytes(lambda x: net(x), x, module=net) == expected
    with peak_memory.LiveBytes() as live:  # the same count on the real tensors
        net(x)
    assert live.peak == expected


def test_a_fake_run_allocates_nothing_and_changes_nothing():
    net = nn.Linear(1000, 1000)
    before = net.weight.clone()
    x = torch.ones(1, 1000).expand(10**6, 1000)  # a million examples, held as one
    peak = peak_memory.peak_bytes(lambda x: net(x).sum().backward(), x, module=net)
    assert peak > 10**6 * 1000 * 4  # the fake output alone is 4 GB
    assert torch.equal(net.weight, before) and net.weight.grad is None


def test_available_memory_and_the_data_budget():
    have = memory.available_memory()
    assert have > 0
    assert memory.data_memory_budget(torch.device("cpu")) == pytest.approx(have // 2, rel=0.1)


@pytest.mark.parametrize("n, text", [(512, "512 B"), (3_200, "3.2 kB"), (12_600_000, "12.6 MB"),
                                     (4.2e9, "4.2 GB"), (4e12, "4,000 GB")])
def test_format_bytes(n, text):
    assert memory.format_bytes(n) == text
