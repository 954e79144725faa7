"""data.classes (train and test on a subset of the labels) and data.mutation_rate (a fraction
of the training pixels replaced by random values per batch, for background models)."""

from __future__ import annotations

import pytest
import torch

import pyrovae
from pyrovae.data.images import mutate_part
from pyrovae.errors import DataError

X = torch.rand(60, 5)
Y = torch.arange(60) % 4


def _data(**data):
    config = pyrovae.resolve_config({"data": {"dataset": "tensors", "binarize": "none", **data}})
    return pyrovae.load_data(config["data"], train_data=(X, Y), test_data=(X[:20], Y[:20]))


def test_classes_keep_the_examples_of_those_labels_in_order():
    data = _data(classes=[1, 3])
    keep = (Y == 1) | (Y == 3)
    torch.testing.assert_close(data.train_images, X[keep])
    torch.testing.assert_close(data.test_labels, Y[:20][keep[:20]])
    assert data.num_classes == 4  # the labels keep their meaning


def test_classes_outside_the_data_are_refused_in_one_line():
    with pytest.raises(DataError, match=r"data.classes = \[7\] names class 7.*classes 0 to 3"):
        _data(classes=[7])


def test_a_mutation_rate_of_zero_leaves_the_batches_and_the_stream_as_they_were():
    plain, zero = _data(), _data(mutation_rate=0.0)
    streams = [torch.Generator().manual_seed(0) for _ in range(2)]
    for (a, _), (b, _) in zip(
        plain.train_batches(16, streams[0]), zero.train_batches(16, streams[1]), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(torch.rand(3, generator=streams[0]), torch.rand(3, generator=streams[1]))


@pytest.mark.parametrize("binary", [True, False])
def test_mutation_replaces_the_stated_fraction_with_values_of_the_support(binary):
    x = torch.full((400, 50), 0.3) if not binary else torch.zeros(400, 50)
    out = mutate_part(x, slice(0, 400), 400, 0.2, binary, torch.Generator().manual_seed(0))
    replaced = out != x  # a replaced bit equals the old one half the time; a level 1/256 of it
    share = 0.2 * (0.5 if binary else 255 / 256)
    # 20,000 Bernoulli(share) draws: standard deviation below 0.003; 5 of them as margin
    assert abs(replaced.double().mean().item() - share) < 0.015
    levels = out * 255
    assert torch.allclose(levels[replaced], levels[replaced].round(), atol=1e-4)


def test_a_part_of_a_global_batch_draws_as_the_whole_batch_does():
    x = torch.rand(10, 6)
    whole = mutate_part(x, slice(0, 10), 10, 0.5, False, torch.Generator().manual_seed(1))
    part = mutate_part(x[4:7], slice(4, 7), 10, 0.5, False, torch.Generator().manual_seed(1))
    torch.testing.assert_close(part, whole[4:7], rtol=0, atol=0)
