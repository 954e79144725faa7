"""The sources of pyrovae.data.sources: the MNIST family offline (a missing set names the
fix), a folder of PNGs with class subfolders, ``.npy`` and ``.npz`` (Keras layout) files, and
CIFAR-10 and SVHN read by torchvision's own loaders from fake files in their layouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_files import (
    H,
    W,
    fake_cifar10_test_split,
    fake_svhn_test_split,
    resolved_data,
    write_fake_cifar10,
    write_fake_svhn,
    write_png_folder,
)

import pyrovae

from conftest import tiny_config


def test_missing_dataset_offline_names_the_fix(tmp_path):
    config = pyrovae.resolve_config(tiny_config())["data"]
    with pytest.raises(pyrovae.DataError, match="--data-root"):
        pyrovae.load_data(config, root=tmp_path)


def test_a_png_folder_with_class_subfolders(tmp_path):
    folder = write_png_folder(tmp_path / "images")
    data = pyrovae.load_data(resolved_data(dataset="folder", path=str(folder), test_fraction=0.25,
                                           binarize="none"))
    assert data.image_shape == (1, H, W) and data.num_classes == 2
    assert data.num_train == 9 and data.test_images.shape == (3, H * W)
    from PIL import Image

    first = np.asarray(Image.open(folder / "class_0" / "0.png"), dtype=np.float32) / 255
    all_x = torch.cat([data.train_images, data.test_images])
    assert any(torch.equal(row, torch.from_numpy(first.reshape(-1))) for row in all_x)
    labels = torch.cat([data.train_labels, data.test_labels]).sort().values
    assert labels.tolist() == [0] * 6 + [1] * 6  # one label per subfolder
    # resized and converted to colour as asked
    data = pyrovae.load_data(resolved_data(dataset="folder", path=str(folder), image_size=[4, 5],
                                           channels=3))
    assert data.image_shape == (3, 4, 5) and data.data_dim == 60


def test_npy_and_npz_in_the_keras_layout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, H, W), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    data = pyrovae.load_data(resolved_data(dataset="array", path=str(tmp_path / "x.npy"),
                                           binarize="none"))
    assert data.image_shape == (1, H, W) and data.num_train == 18 and data.num_classes == 0
    assert (data.train_labels == -1).all()
    got = torch.cat([data.train_images, data.test_images]).sort(dim=0).values
    assert torch.equal(got, (torch.from_numpy(x).reshape(20, -1).float() / 255).sort(dim=0).values)

    y = rng.integers(0, 3, 20)
    np.savez(tmp_path / "mnist.npz", x_train=x[:15, :, :, None], y_train=y[:15],
             x_test=x[15:, :, :, None], y_test=y[15:])
    data = pyrovae.load_data(resolved_data(dataset="array", path=str(tmp_path / "mnist.npz"),
                                           binarize="none"))
    assert data.image_shape == (1, H, W) and data.num_classes == 3
    assert torch.equal(data.test_labels, torch.from_numpy(y[15:]))
    assert torch.equal(data.test_images, torch.from_numpy(x[15:]).reshape(5, -1).float() / 255)


@pytest.mark.parametrize("dataset, write, read, num_train", [
    ("cifar10", write_fake_cifar10, fake_cifar10_test_split, 20),
    ("svhn", write_fake_svhn, fake_svhn_test_split, 3),
])
def test_torchvision_colour_sets_are_read_by_torchvision(tmp_path, monkeypatch, dataset, write,
                                                         read, num_train):
    root = write(tmp_path, monkeypatch)
    data = pyrovae.load_data(resolved_data(dataset=dataset, binarize="none"), root=root)
    assert data.image_shape == (3, 32, 32) and data.num_classes == 10
    assert data.num_train == num_train
    images, labels = read(root)
    assert torch.equal(data.test_images, images) and data.test_labels.tolist() == labels
    with pytest.raises(pyrovae.DataError, match="downloads are off"):
        pyrovae.load_data(resolved_data(dataset=dataset), root=tmp_path / "empty")
