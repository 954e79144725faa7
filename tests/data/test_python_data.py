"""Data given in Python (pyrovae.data.examples): tensors, NumPy arrays and Datasets yielding
``x`` or ``(x, label)``, read through the one ``Examples`` interface, and the seeded split of
a training set into training and test examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_files import H, W, resolved_data

import pyrovae
from pyrovae.data.examples import TensorExamples, split_examples


def test_tensors_arrays_and_datasets(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.random((12, 5)).astype(np.float32)  # tabular data: floats as they are
    for given in (vectors, torch.from_numpy(vectors)):
        data = pyrovae.load_data(resolved_data(binarize="none"), train_data=given[:10],
                                 test_data=given[10:])
        assert data.image_shape == (5,)
        assert torch.equal(data.test_images, torch.from_numpy(vectors[10:]))

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):  # (H, W, C) uint8 images and labels
            return torch.full((H, W, 3), 10 * i, dtype=torch.uint8), i % 2

    data = pyrovae.load_data(resolved_data(binarize="none"), train_data=Pairs(), test_data=Pairs())
    assert data.image_shape == (3, H, W) and data.num_classes == 2
    assert data.test_images[3].unique().tolist() == [pytest.approx(30 / 255)]




def test_the_split_is_seeded_and_leaves_no_example_out():
    examples = TensorExamples(torch.arange(20.0)[:, None], torch.arange(20), (1,), 20, "x")
    train, test = split_examples(examples, 0.25, seed=3)
    assert (len(train), len(test)) == (15, 5)  # a fraction of 0.25 of 20 examples
    x_train, _ = train.materialize()
    x_test, _ = test.materialize()
    assert sorted(torch.cat([x_train, x_test]).flatten().tolist()) == list(range(20))
    again_train, _ = split_examples(examples, 0.25, seed=3)
    assert torch.equal(again_train.materialize()[0], x_train)
    other_train, _ = split_examples(examples, 0.25, seed=4)
    assert not torch.equal(other_train.materialize()[0], x_train)
    with pytest.raises(pyrovae.DataError, match=r"too few to keep data\.test_fraction"):
        split_examples(TensorExamples(torch.zeros(1, 1), torch.zeros(1), (1,), 0, "x"), 0.5, 0)
