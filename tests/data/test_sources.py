"""The sources of pyrovae.data.sources: the MNIST family offline (a missing set names the
fix), a folder of PNGs with class subfolders, ``.npy`` and ``.npz`` (Keras layout) files, and
CIFAR-10 and SVHN read by torchvision's own loaders from fake files in their layouts."""

from __future__ import annotations

import sys

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


def test_a_folder_takes_every_format_pillow_reads(tmp_path):
    """BMP, TIFF, WebP (lossless) and PNG images are read as they are; a GIF by its first
    frame (a red frame before a blue one reads as red)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = {s: rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
              for s in (".bmp", ".tiff", ".webp", ".png")}
    for suffix, array in pixels.items():
        Image.fromarray(array).save(folder / f"a{suffix}", lossless=True)
    red, blue = (Image.new("RGB", (W, H), colour) for colour in ((255, 0, 0), (0, 0, 255)))
    red.save(folder / "b.gif", save_all=True, append_images=[blue])
    data = pyrovae.load_data(resolved_data(dataset="folder", path=str(folder), test_fraction=0.2,
                                           binarize="none"))
    assert data.image_shape == (3, H, W) and data.num_train + len(data.test_images) == 5
    rows = {tuple(row.tolist()) for row in torch.cat([data.train_images, data.test_images])}
    for array in pixels.values():
        assert tuple((torch.from_numpy(array).permute(2, 0, 1).reshape(-1) / 255).tolist()) in rows
    first_frame = torch.tensor([1.0, 0.0, 0.0])[:, None].expand(3, H * W).reshape(-1)
    assert tuple(first_frame.tolist()) in rows


def test_a_large_folder_shows_a_progress_bar_while_read_and_hashed(tmp_path, monkeypatch,
                                                                   capsys):
    from pyrovae.data import files

    folder = write_png_folder(tmp_path / "images")
    monkeypatch.setattr(files, "PROGRESS_MIN_FILES", 12)  # the folder's 12 images are "many"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # as on a terminal
    pyrovae.load_data(resolved_data(dataset="folder", path=str(folder), binarize="none"))
    err = capsys.readouterr().err
    assert "reading the images' headers" in err and "hashing the data's files" in err, err
    assert "0/12" in err, err  # the bar counts the files
    monkeypatch.setattr(files, "PROGRESS_MIN_FILES", 13)  # a small folder: no bar
    pyrovae.load_data(resolved_data(dataset="folder", path=str(folder), binarize="none"))
    assert capsys.readouterr().err == ""


def test_class_subfolders_name_the_classes_of_a_run(tmp_path, capsys):
    """The names of the class subfolders are recorded in the run, label the rows of the
    "classes" figure and are what `sample --label` takes."""
    from pyrovae.cli import main
    from pyrovae.viz import figures

    from png_checks import assert_legible

    folder = tmp_path / "pets"
    write_png_folder(folder, per_class=8, classes=2)
    for label, name in enumerate(("cat", "dog")):
        (folder / f"class_{label}").rename(folder / name)
    out = tmp_path / "run"
    trainer = pyrovae.train(
        tiny_config(data={"dataset": "folder", "path": str(folder), "binarize": "none",
                          "train_limit": 0, "test_limit": 0},
                    model={"latent_dim": 2, "prior": {"type": "conditional"},
                           "likelihood": "continuous_bernoulli"},
                    train={"batch_size": 4}, eval={"num_samples": 0}),
        out=out, progress=False)
    assert pyrovae.load_config(out / "config.toml")["data"]["class_names"] == ["cat", "dog"]
    texts = assert_legible(figures.draw("classes", trainer.program,
                                        class_names=trainer.config["data"]["class_names"]))
    assert {"cat", "dog"} <= set(texts), texts
    assert main(["plot", str(out), "--kind", "classes", "--device", "cpu"]) == 0
    assert main(["sample", str(out), "--label", "dog", "--num", "4", "--out",
                 str(tmp_path / "dogs.png"), "--device", "cpu"]) == 0
    assert (tmp_path / "dogs.png").is_file()
    capsys.readouterr()
    assert main(["sample", str(out), "--label", "bird", "--out", str(tmp_path / "x.png"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'bird' is not a class of this run" in err, err
    assert "its classes are cat, dog" in err, err


def test_binarizing_colour_images_is_said_in_one_line(tmp_path):
    """The default data.binarize = "dynamic" turns colour images into 0/1 channels: a new run
    says so, naming the likelihood that models 8-bit colour; grey images (binary MNIST's
    setting) and colour kept as it is say nothing."""
    import warnings

    colour = write_png_folder(tmp_path / "colour", mode="RGB")
    grey = write_png_folder(tmp_path / "grey")

    def train(folder, likelihood="bernoulli", **data):
        config = tiny_config(data={"dataset": "folder", "path": str(folder), "train_limit": 0,
                                   "test_limit": 0, **data},
                             model={"latent_dim": 2, "likelihood": likelihood},
                             train={"batch_size": 4},
                             eval={"num_samples": 0})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pyrovae.train(config, progress=False)
        return [w for w in caught if issubclass(w.category, pyrovae.PyrovaeWarning)]

    said = train(colour)
    assert len(said) == 1 and issubclass(said[0].category, pyrovae.BinarizedColourWarning)
    message = str(said[0].message)
    assert "\n" not in message and "binarizes the colour images" in message, message
    assert "model.likelihood = 'discretized_logistic'" in message, message
    assert train(grey) == []
    assert train(colour, binarize="none", likelihood="continuous_bernoulli") == []
