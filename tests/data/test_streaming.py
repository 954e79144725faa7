"""Training batches read by a DataLoader (pyrovae.data.streaming): the same batches, hence
the same numbers, as the in-memory path, for every rank of a run of several; and the data
that does not fit in memory is streamed."""

from __future__ import annotations

import torch
from data_files import resolved_data

import pyrovae

from conftest import numbers, tiny_config


def test_streaming_gives_the_batches_of_the_in_memory_path(tmp_path):
    """Same generator -> same order and same dynamic binarization, so the same numbers; and
    the contract of the ranks: each rank's part of a global batch, binarized in step."""
    config = resolved_data(train_limit=100, test_limit=10)
    memory = pyrovae.load_data({**config, "in_memory": True})
    for workers in (0, 2):
        streamed = pyrovae.load_data({**config, "in_memory": False, "workers": workers})
        assert isinstance(streamed, pyrovae.data.StreamingImageData)
        for world_size, rank in ((1, 0), (3, 1)):
            a = list(memory.train_batches(32, torch.Generator().manual_seed(5), rank=rank,
                                          world_size=world_size))
            b = list(streamed.train_batches(32, torch.Generator().manual_seed(5), rank=rank,
                                            world_size=world_size))
            assert len(a) == len(b) == 4
            for (xa, ya), (xb, yb) in zip(a, b):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    whole = list(memory.train_batches(32, torch.Generator().manual_seed(5)))
    parts = [list(memory.train_batches(32, torch.Generator().manual_seed(5), rank=r,
                                       world_size=3)) for r in range(3)]
    for i, (x, _) in enumerate(whole):
        assert torch.equal(torch.cat([p[i][0] for p in parts]), x)  # the parts tile the batch
    # a training run takes the same steps either way
    runs = [pyrovae.train(tiny_config(data={"train_limit": 128, "test_limit": 32,
                                            "in_memory": flag, "workers": 0}),
                          progress=False).metrics for flag in (True, False)]
    assert numbers(runs[0]) == numbers(runs[1])  # the same numbers; not the same seconds


def test_auto_streams_what_does_not_fit(monkeypatch):
    config = resolved_data(train_limit=64, test_limit=8)
    assert isinstance(pyrovae.load_data(config), pyrovae.ImageData)
    monkeypatch.setattr("pyrovae.data.data_memory_budget", lambda device: 64 * 785 * 4)
    assert isinstance(pyrovae.load_data(config), pyrovae.data.StreamingImageData)
