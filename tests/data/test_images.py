"""Data held on the device (pyrovae.data.images): MNIST loads offline with limits and
binarization as configured, training batches are fresh binary draws of shuffled examples, and
``batches`` slices examples in order."""

from __future__ import annotations

import torch

import pyrovae
from pyrovae.data import batches

from conftest import tiny_config


def data_config(**values):
    return pyrovae.resolve_config(tiny_config(data=values))["data"]


def test_limits_and_binarization():
    grey = pyrovae.load_data(data_config(binarize="none", train_limit=100, test_limit=30))
    assert grey.train_images.shape == (100, 784) and grey.test_images.shape == (30, 784)
    assert grey.train_labels.shape == (100,) and grey.train_labels.dtype == torch.int64
    assert grey.image_shape == (1, 28, 28) and grey.num_classes == 10 and grey.data_dim == 784
    assert 0 <= grey.train_images.min() and grey.train_images.max() <= 1
    assert ((grey.train_images > 0) & (grey.train_images < 1)).any()  # grey levels

    static = pyrovae.load_data(data_config(binarize="static", train_limit=100, test_limit=30))
    for images in (static.train_images, static.test_images):
        assert ((images == 0) | (images == 1)).all()
    again = pyrovae.load_data(data_config(binarize="static", train_limit=100, test_limit=30))
    assert torch.equal(static.train_images, again.train_images)  # binarized once, seeded
    other = pyrovae.load_data(data_config(binarize="static", train_limit=100, test_limit=30,
                                          binarization_seed=1))
    assert not torch.equal(static.train_images, other.train_images)

    dynamic = pyrovae.load_data(data_config(binarize="dynamic", train_limit=100, test_limit=30))
    assert torch.equal(dynamic.train_images, grey.train_images)  # binarized per batch
    assert torch.equal(dynamic.test_images, static.test_images)  # the test set: once


def test_dynamic_batches_are_fresh_binary_draws_of_shuffled_examples():
    data = pyrovae.load_data(data_config(binarize="dynamic", train_limit=50, test_limit=10))
    generator = torch.Generator().manual_seed(0)
    epoch = list(data.train_batches(16, generator))
    assert [x.shape[0] for x, _ in epoch] == [16, 16, 16, 2] == [len(y) for _, y in epoch]
    assert data.num_train_batches(16) == 4
    assert all(((x == 0) | (x == 1)).all() for x, _ in epoch)
    labels = torch.cat([y for _, y in epoch])
    assert sorted(labels.tolist()) == sorted(data.train_labels.tolist())  # each example once


def test_batches_slice_in_order_with_or_without_labels():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    got = list(batches(x, y, 4))
    assert [b.flatten().tolist() for b, _ in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c.tolist() for _, c in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c for _, c in batches(x, None, 4)] == [None, None, None]
