"""People's own data: every source (a PNG folder with class subfolders, .npy, .npz in the Keras
layout, tensors, a Dataset, a fake CIFAR-10 that torchvision's own loader reads) loads on tiny
files the tests write; the streaming path gives the batches, hence the numbers, of the
in-memory one; a run records its data so that evaluate and resume find it again."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae.cli import main
from pyrovae.config import dumps_toml

from conftest import tiny_config

H, W = 8, 6


def write_png_folder(root: Path, per_class: int = 6, classes: int = 2, mode: str = "L") -> Path:
    """``classes`` subfolders of ``per_class`` random ``H x W`` PNGs each."""
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (H, W) if mode == "L" else (H, W, 3)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                folder / f"{i}.png")
    return root


def own_config(**data) -> dict:
    """The tiny config on data of ``H x W`` images (MLP nets, 2-d latent)."""
    return tiny_config(data={"train_limit": 0, "test_limit": 0, **data},
                       model={"latent_dim": 2}, train={"batch_size": 4}, eval={"num_samples": 2})


def resolved_data(**data) -> dict:
    return pyrovae.resolve_config(own_config(**data))["data"]


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


def test_npy_npz_keras_layout_and_python_data(tmp_path):
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


def write_fake_cifar10(root: Path, monkeypatch, n: int = 4) -> Path:
    """A CIFAR-10 in torchvision's on-disk layout (cifar-10-batches-py pickles of ``n`` images
    each); torchvision checks the files' MD5s, which are set to the fake files' own."""
    import torchvision.datasets

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def dump(name, entry):
        (folder / name).write_bytes(pickle.dumps(entry))
        return [name, hashlib.md5((folder / name).read_bytes()).hexdigest()]

    batch = lambda: {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),  # noqa: E731
                     "labels": rng.integers(0, 10, n).tolist()}
    train = [dump(f"data_batch_{i}", batch()) for i in range(1, 6)]
    test = [dump("test_batch", batch())]
    meta = dump("batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", train)
    monkeypatch.setattr(cls, "test_list", test)
    monkeypatch.setattr(cls, "meta", {"filename": meta[0], "key": "label_names", "md5": meta[1]})
    return root


def write_fake_svhn(root: Path, monkeypatch, n: int = 3) -> Path:
    """An SVHN in torchvision's on-disk layout (``SVHN/{train,test}_32x32.mat`` written with
    scipy: images ``(32, 32, 3, N)``, labels 1..10 with 10 for the digit 0); torchvision checks
    the files' MD5s, which are set to the fake files' own."""
    import scipy.io
    import torchvision.datasets

    folder = root / "SVHN"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    splits = {}
    for split in ("train", "test"):
        name = f"{split}_32x32.mat"
        scipy.io.savemat(folder / name, {
            "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
            "y": np.array([[10], [1], [9]][:n], dtype=np.uint8),
        })
        splits[split] = ["", name, hashlib.md5((folder / name).read_bytes()).hexdigest()]
    monkeypatch.setattr(torchvision.datasets.SVHN, "split_list", splits)
    return root


def fake_cifar10_test_split(root: Path) -> tuple[torch.Tensor, list[int]]:
    """The test images ``(N, 3072)`` in (C, H, W) order and labels of a fake CIFAR-10."""
    batch = pickle.loads((root / "cifar-10-batches-py" / "test_batch").read_bytes())
    return torch.from_numpy(batch["data"]).float() / 255, batch["labels"]


def fake_svhn_test_split(root: Path) -> tuple[torch.Tensor, list[int]]:
    """The test images ``(N, 3072)`` in (C, H, W) order and labels of a fake SVHN, whose
    MATLAB file holds ``(H, W, C, N)`` images and the label 10 for the digit 0."""
    import scipy.io

    mat = scipy.io.loadmat(root / "SVHN" / "test_32x32.mat")
    images = torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).reshape(mat["X"].shape[-1], -1)
    return images.float() / 255, [int(y) % 10 for y in mat["y"].ravel()]


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
    assert runs[0] == runs[1]


def test_auto_streams_what_does_not_fit(monkeypatch):
    config = resolved_data(train_limit=64, test_limit=8)
    assert isinstance(pyrovae.load_data(config), pyrovae.ImageData)
    monkeypatch.setattr("pyrovae.data.data_memory_budget", lambda device: 64 * 785 * 4)
    assert isinstance(pyrovae.load_data(config), pyrovae.data.StreamingImageData)


def _write_source(kind: str, tmp_path: Path, seed: int) -> Path:
    """A folder of PNGs or a .npy file of 24 random images, written afresh with ``seed``."""
    if kind == "folder":
        import shutil

        shutil.rmtree(tmp_path / "images", ignore_errors=True)
        write_png_folder(tmp_path / "images", per_class=12)
        if seed:  # changed data: one image redrawn
            from PIL import Image

            noise = np.random.default_rng(seed).integers(0, 256, (H, W), dtype=np.uint8)
            Image.fromarray(noise, "L").save(tmp_path / "images" / "class_1" / "3.png")
        return tmp_path / "images"
    rng = np.random.default_rng(seed)
    np.save(tmp_path / "x.npy", rng.integers(0, 256, (24, H, W), dtype=np.uint8))
    return tmp_path / "x.npy"


@pytest.mark.parametrize("kind", ["folder", "array"])
def test_a_run_records_its_data_and_evaluate_finds_it(kind, tmp_path, capsys):
    """pyrovae train --config on a folder or array, then pyrovae evaluate RUN, end to end."""
    path = _write_source(kind, tmp_path, 0)
    config_file = tmp_path / "own.toml"
    config_file.write_text(dumps_toml(own_config(dataset=kind, path=str(path))))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(run), "--quiet"]) == 0
    recorded = pyrovae.config.load_config(run / "config.toml")["data"]
    assert recorded["shape"] == [1, H, W] and recorded["num_classes"] == (2 if kind == "folder"
                                                                           else 0)
    assert recorded["path"] == str(path.resolve()) and len(recorded["sha256"]) == 64
    vae, _, _ = pyrovae.load_run(run, device="cpu")  # rebuilt without reading the data
    assert vae.image_shape == (1, H, W)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 2  # 10% of 24
    # changed data is refused, naming the change
    _write_source(kind, tmp_path, 1)
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet"]) == 2
    assert "has changed since the run recorded it" in capsys.readouterr().err


def test_a_run_on_python_data_must_be_given_it_again(tmp_path, capsys):
    x = torch.bernoulli(torch.full((20, 12), 0.3), generator=torch.Generator().manual_seed(0))
    config = own_config(binarize="static")  # binary already: static binarization keeps it
    run = tmp_path / "run"
    pyrovae.train(config, out=run, progress=False, train_data=x[:16], test_data=x[16:])
    recorded = pyrovae.config.load_config(run / "config.toml")["data"]
    assert recorded["dataset"] == "tensors" and recorded["shape"] == [12]
    assert main(["evaluate", str(run), "--num-samples", "2", "--quiet"]) == 2
    assert "pass it in again" in capsys.readouterr().err
    with pytest.raises(pyrovae.DataError, match="has changed"):
        pyrovae.resume(run, epochs=2, progress=False, train_data=1 - x[:16], test_data=x[16:])
    trainer = pyrovae.resume(run, epochs=2, progress=False, train_data=x[:16], test_data=x[16:])
    assert [row["epoch"] for row in trainer.metrics] == [1, 2]


def test_the_model_of_own_data_is_known_before_training(tmp_path):
    """describe / VAE.from_config read the shape from the files' headers; vectors refuse a
    conv network and unlabelled data a conditional prior, naming the fix."""
    folder = write_png_folder(tmp_path / "images", mode="RGB")
    vae = pyrovae.VAE.from_config(own_config(dataset="folder", path=str(folder)))
    assert vae.image_shape == (3, H, W) and vae.prior.latent_dim == 2
    np.save(tmp_path / "v.npy", np.zeros((10, 7), np.float32))
    vectors = own_config(dataset="array", path=str(tmp_path / "v.npy"))
    assert pyrovae.VAE.from_config(vectors).data_dim == 7
    vectors["model"]["encoder"] = {"type": "conv"}
    with pytest.raises(pyrovae.ConfigError, match="needs images"):
        pyrovae.VAE.from_config(vectors)
    vectors["model"].update(encoder={"type": "mlp"}, prior={"type": "conditional"})
    with pytest.raises(pyrovae.ConfigError, match="needs labelled data"):
        pyrovae.VAE.from_config(vectors)
