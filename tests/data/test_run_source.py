"""pyrovae.data.run_source: the ``SOURCE`` of the commands that use a trained run (its test
set, a folder of images, an array file) prepared exactly as the run's test set is, and refused
in one line when it does not fit the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_files import H, W, own_config, write_png_folder

import pyrovae
from pyrovae.data import binarize_once
from pyrovae.data.run_source import load_run_source


def _config(**data):
    return pyrovae.resolve_config(own_config(**data))


def _npz(path, rng, n_train=12, n_test=6, shape=(H, W), classes=3):
    x = rng.integers(0, 256, (n_train + n_test, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, n_train + n_test)
    np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
    return x[n_train:], y[n_train:]


@pytest.mark.parametrize("binarize", ["dynamic", "static", "none"])
def test_the_test_set_and_the_same_file_given_as_a_path_agree(tmp_path, binarize):
    x_test, y_test = _npz(tmp_path / "d.npz", np.random.default_rng(0))
    config = _config(dataset="array", path=str(tmp_path / "d.npz"), binarize=binarize)
    x, y = load_run_source(config, "test")
    data = pyrovae.load_data(config["data"])
    assert torch.equal(x, data.test_images) and torch.equal(y, data.test_labels)
    # the same examples given as a path: the same preparation, draws included
    x_path, y_path = load_run_source(config, tmp_path / "d.npz")
    assert torch.equal(x_path, x) and torch.equal(y_path, torch.from_numpy(y_test))
    levels = torch.from_numpy(x_test).reshape(len(x_test), -1).float() / 255
    seed = config["data"]["binarization_seed"] + 1  # the rule of the run's test set
    expected = levels if binarize == "none" else binarize_once(levels, seed)
    assert torch.equal(x_path, expected)


def test_a_npy_file_is_every_example_unlabelled(tmp_path):
    _npz(tmp_path / "d.npz", np.random.default_rng(0))
    config = _config(dataset="array", path=str(tmp_path / "d.npz"), binarize="none")
    new = np.random.default_rng(1).random((5, H, W)).astype(np.float32)  # floats: as they are
    np.save(tmp_path / "new.npy", new)
    x, y = load_run_source(config, str(tmp_path / "new.npy"))
    assert y is None and torch.equal(x, torch.from_numpy(new).reshape(5, -1))


def test_a_colour_folder_for_a_colour_array_run_reads_the_same_values(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    x_test, _ = _npz(tmp_path / "d.npz", rng, shape=(H, W, 3))  # (N, H, W, C) layout
    config = _config(dataset="array", path=str(tmp_path / "d.npz"), binarize="none")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(x_test):
        Image.fromarray(image, "RGB").save(folder / f"{i:02d}.png")  # PNG: lossless
    x, y = load_run_source(config, folder)
    x_run, _ = load_run_source(config, "test")
    assert y is None and x.shape == (len(x_test), 3 * H * W) and torch.equal(x, x_run)


def test_a_grey_run_reads_a_folder_of_colour_images_as_grey(tmp_path):
    grey = write_png_folder(tmp_path / "grey")
    colour = write_png_folder(tmp_path / "colour", mode="RGB")
    config = _config(dataset="folder", path=str(grey), binarize="none")
    x, y = load_run_source(config, colour)
    assert x.shape == (12, H * W) and y.tolist() == [0] * 6 + [1] * 6
    assert 0 <= float(x.min()) and float(x.max()) <= 1


def test_a_run_that_resized_its_images_resizes_new_ones(tmp_path):
    folder = write_png_folder(tmp_path / "images")
    config = _config(dataset="folder", path=str(folder), image_size=[4, 5], channels=3)
    x, _ = load_run_source(config, folder)
    assert x.shape == (12, 3 * 4 * 5)


def test_the_run_record_alone_is_enough(tmp_path):
    """A run's config records the data's shape: a new file is checked against it without
    reading the training data."""
    _npz(tmp_path / "d.npz", np.random.default_rng(0))
    config = _config(dataset="array", path=str(tmp_path / "d.npz"))
    config["data"].update(shape=[1, H, W], num_classes=3, path=str(tmp_path / "gone.npz"))
    np.save(tmp_path / "new.npy", np.zeros((2, H, W), np.uint8))
    x, _ = load_run_source(config, tmp_path / "new.npy")
    assert x.shape == (2, H * W)


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda p: np.save(p / "s.npy", np.zeros((3, H + 1, W), np.uint8)), r"shape \(1, 9, 6\)"),
        (lambda p: (p / "s.txt").write_text("1 2 3"), "neither a folder nor"),
        (lambda p: None, "does not exist"),
        (
            lambda p: np.savez(
                p / "s.npz", x_train=np.zeros((3, H, W), np.uint8), y_train=np.array([0, 1, 7])
            ),
            "class 7",
        ),
    ],
    ids=["wrong-shape", "unknown-suffix", "missing", "unknown-class"],
)
def test_a_source_that_does_not_fit_is_refused_in_one_line(tmp_path, write, match):
    _npz(tmp_path / "d.npz", np.random.default_rng(0))
    config = _config(dataset="array", path=str(tmp_path / "d.npz"))
    write(tmp_path)
    name = next((p.name for p in tmp_path.glob("s.*")), "s.npy")
    with pytest.raises(pyrovae.DataError, match=match) as error:
        load_run_source(config, tmp_path / name)
    assert "\n" not in str(error.value)
